// Live job events: GET /v1/jobs/:id/events streams a job's log (state, progress, each validated unit,
// result, revisions) from Redis, so any coordinator serves what any coordinator wrote; a client that
// loses the stream resumes with Last-Event-ID and misses nothing; `cohort submit --watch` follows it
// instead of polling. Real Redis, NATS and worker daemons.
import test from 'ava'
import { Redis } from 'ioredis'
import { once } from 'node:events'
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { apiKeyDigest } from '../coordinator/index.js'
import { ApiError, connect, type JobEvent } from '../client/index.js'
import { eventFromEntry } from '../shared/index.js'
import { spawnCohort, startCluster, waitForJob, waitUntil, type Cluster } from './helpers/cluster.js'
import { gate } from './helpers/runners.js'
import { useServices } from './helpers/services.js'

const services = useServices(test)

/** Everything in the job's event log, read straight from Redis. */
async function logged(cluster: Cluster, jobId: string): Promise<JobEvent[]> {
  const redis = new Redis(services().redisUrl)
  try {
    const rows = await redis.xrange(`${cluster.redisPrefix}job:${jobId}:events`, '-', '+')
    return rows.map(([id, fields]) => eventFromEntry(id, fields))
  } finally {
    redis.disconnect()
  }
}

const PRIMES = {
  type: 'primes' as const,
  params: { to: 100_000, unitSize: 10_000 },
  redundancy: { quorum: 1 },
}

test('events - a client submits a job, follows its events to completion and reads the result', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  await cluster.addWorker({ threads: 2 })
  const client = connect({ url: cluster.coordinators[0]!.url })
  const job = await client.submit(PRIMES)
  const seen: JobEvent[] = []
  const states: string[] = []
  const units: number[] = []
  let lastProgress = { validated: 0, failed: 0, total: 0 }
  job.on('event', (e) => seen.push(e))
  job.on('state', (s) => states.push(s))
  job.on('unit', (i) => units.push(i))
  job.on('progress', (c) => (lastProgress = c))
  const result = await job.result()
  t.deepEqual(result, { count: 9592, from: 0, to: 100_000 })
  t.deepEqual(states, ['queued', 'running', 'completed'])
  t.deepEqual(
    [...units].sort((a, b) => a - b),
    Array.from({ length: 10 }, (_, i) => i),
  )
  t.deepEqual(lastProgress, { validated: 10, failed: 0, total: 10 })
  const types = seen.map((e) => e.type)
  t.is(types.indexOf('progress'), 1, 'the split comes right after queued')
  t.deepEqual(types.slice(-2), ['result', 'state'])
  // Every event in the log, once, in order.
  t.deepEqual(seen, await logged(cluster, job.id))
})

test('events - the stream resumes after a disconnect with Last-Event-ID and loses no event', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const g = gate(3)
  await cluster.addWorker({ threads: 1, wrap: g.wrap, peers: false })
  const url = cluster.coordinators[0]!.url
  // A fetch whose first event stream the test cuts, and whose second waits until the job is done:
  // every event after the cut happens while the client is away.
  const opened: { lastEventId: string | null; cut: () => void }[] = []
  let release: () => void = () => {}
  const reopened = new Promise<void>((r) => (release = r))
  const cuttable: typeof fetch = async (input, init) => {
    const headers = new Headers(init?.headers)
    const target = input instanceof Request ? input.url : input.toString()
    if (!target.endsWith('/events')) return fetch(input, init)
    if (opened.length > 0) await reopened
    const res = await fetch(input, init)
    let cut: () => void = () => {}
    const body = res.body!.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        start(ctl) {
          cut = () => ctl.error(new Error('connection cut by the test'))
        },
      }),
    )
    opened.push({ lastEventId: headers.get('last-event-id'), cut })
    return new Response(body, { status: res.status, headers: res.headers })
  }
  const client = connect({ url, fetch: cuttable })
  const job = await client.submit({ ...PRIMES, params: { to: 100_000, unitSize: 10_000 } })
  const seen: JobEvent[] = []
  const reconnects: string[] = []
  job.on('event', (e) => seen.push(e))
  job.on('reconnect', (after) => reconnects.push(after))
  // Three units pass the gate; once the client has seen them, the connection is cut.
  await new Promise<void>((resolve) => {
    const check = (): void => {
      if (seen.filter((e) => e.type === 'unit').length === 3) resolve()
    }
    job.on('event', check)
  })
  await waitUntil('the other units to wait at the gate', () => g.waiting > 0)
  const lastBefore = job.lastEventId
  opened[0]!.cut()
  g.open()
  t.is((await waitForJob(cluster.api, job.id)).state, 'completed')
  release()
  t.deepEqual(await job.result(), { count: 9592, from: 0, to: 100_000 })
  t.is(opened.length, 2)
  t.is(opened[0]!.lastEventId, null)
  t.is(opened[1]!.lastEventId, lastBefore, 'resumed after the last event seen')
  t.deepEqual(reconnects, [lastBefore])
  const all = await logged(cluster, job.id)
  t.true(all.findIndex((e) => e.id === lastBefore) < all.length - 5, 'events happened while away')
  t.deepEqual(seen, all, 'every event once, in order')
})

test('events - any coordinator streams the events any coordinator wrote', async (t) => {
  const cluster = await startCluster({ services: services(), coordinators: 2 })
  t.teardown(() => cluster.stop())
  await cluster.addWorker({ threads: 2 })
  await cluster.addWorker({ threads: 2, coordinatorUrl: cluster.coordinators[1]!.url })
  const [a, b] = cluster.coordinators.map((c) => connect({ url: c.url }))
  const job = await a!.submit({ ...PRIMES, params: { to: 200_000, unitSize: 10_000 } })
  const onB = b!.handle<unknown>(job.id)
  const fromA: JobEvent[] = []
  const fromB: JobEvent[] = []
  job.on('event', (e) => fromA.push(e))
  onB.on('event', (e) => fromB.push(e))
  t.is(await job.done(), 'completed')
  t.is(await onB.done(), 'completed')
  t.deepEqual(fromA, fromB)
  t.deepEqual(fromB, await logged(cluster, job.id))
  t.is(fromB.filter((e) => e.type === 'unit').length, 20)
  // The job was created on A (its `queued` event is A's write) and B streamed it; which coordinator
  // validated which unit is up to the queue group (batched results may all land on one), and every
  // unit event is in the one log whoever wrote it.
  t.like(fromB[0], { type: 'state', data: { state: 'queued' } })
  const validatedBy = cluster.coordinators.map((c) => c.counters.unitsValidated)
  t.is(
    validatedBy.reduce((x, y) => x + y, 0),
    20,
    `units validated per coordinator: ${validatedBy.join(', ')}`,
  )
})

test('events - owners only, a bad Last-Event-ID is refused, and streams are bounded', async (t) => {
  const KEY_A = `a-${'1'.repeat(40)}`
  const KEY_B = `b-${'2'.repeat(40)}`
  const cluster = await startCluster({
    services: services(),
    tuning: {
      anonymous: false,
      eventStreamsMax: 1,
      apiKeys: [
        { name: 'alice', role: 'submitter', sha256: apiKeyDigest(KEY_A), quota: {} },
        { name: 'bob', role: 'submitter', sha256: apiKeyDigest(KEY_B), quota: {} },
      ],
    },
  })
  t.teardown(() => cluster.stop())
  const url = cluster.coordinators[0]!.url
  const alice = connect({ url, apiKey: KEY_A })
  const job = await alice.submit(PRIMES)
  const path = `${url}/v1/jobs/${job.id}/events`
  const bob = await fetch(path, { headers: { authorization: `Bearer ${KEY_B}` } })
  t.is(bob.status, 404)
  const nobody = await fetch(path)
  t.is(nobody.status, 401)
  const bad = await fetch(path, { headers: { authorization: `Bearer ${KEY_A}`, 'last-event-id': 'x' } })
  t.is(bad.status, 400)
  t.regex(((await bad.json()) as { detail: string }).detail, /Last-Event-ID must be an event id/)
  // The one stream allowed is open: another is refused with Retry-After.
  const first = await fetch(path, { headers: { authorization: `Bearer ${KEY_A}` } })
  t.is(first.status, 200)
  t.regex(first.headers.get('content-type') ?? '', /^text\/event-stream/)
  const reader = first.body!.getReader()
  const head = new TextDecoder().decode((await reader.read()).value)
  t.regex(head, /^retry: \d+\n/)
  const second = await fetch(path, { headers: { authorization: `Bearer ${KEY_A}` } })
  t.is(second.status, 503)
  t.is(second.headers.get('retry-after'), '5')
  // The client gives up at once on a 404 (not retriable).
  const err = await t.throwsAsync(connect({ url, apiKey: KEY_B }).handle(job.id).done())
  t.true(err instanceof ApiError && err.status === 404)
  // Once the client goes, its slot is free again.
  await reader.cancel()
  await waitUntil('the stream to close', () => cluster.coordinators[0]!.eventStreams === 0)
  const third = await fetch(path, { headers: { authorization: `Bearer ${KEY_A}` } })
  t.is(third.status, 200)
  await third.body!.cancel()
})

/** A proxy in front of `target` that counts requests by method and path. */
async function countingProxy(target: string): Promise<{ url: string; seen: string[]; close: () => void }> {
  const seen: string[] = []
  const to = new URL(target)
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    seen.push(`${req.method} ${req.url}`)
    const up = request(
      { host: to.hostname, port: to.port, path: req.url, method: req.method, headers: req.headers },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers)
        r.pipe(res)
      },
    )
    up.on('error', () => res.destroy())
    res.on('close', () => up.destroy())
    req.pipe(up)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () => {
      server.closeAllConnections()
      server.close()
    },
  }
}

test('cli - cohort submit --watch shows progress with units/s from the event stream, without polling', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  await cluster.addWorker({ threads: 2 })
  const proxy = await countingProxy(cluster.coordinators[0]!.url)
  t.teardown(() => proxy.close())
  const run = spawnCohort([
    'submit',
    'primes',
    '--param',
    'to=1000000',
    '--param',
    'unitSize=20000',
    '--quorum',
    '1',
    '--watch',
    '--url',
    proxy.url,
  ])
  const [code] = (await once(run.child, 'exit')) as [number | null]
  const out = run.lines.join('\n')
  t.is(code, 0, out)
  t.regex(out, /^\{"count":78498,"from":0,"to":1000000\}$/m)
  t.regex(out, /100\.0%\s+50\/50 units validated/)
  t.regex(out, /units\/s/)
  const id = /^[A-Za-z0-9_-]{22}$/m.exec(out)![0]
  t.deepEqual(
    proxy.seen.filter((r) => !r.endsWith('/events')),
    ['POST /v1/jobs', `GET /v1/jobs/${id}/result`],
    'no GET /v1/jobs/:id polling',
  )
  t.true(proxy.seen.includes(`GET /v1/jobs/${id}/events`))
})
