// The HTTP API has owners: each key sees and controls only its own jobs and uploads (others' answer
// 404, like unknown ones) and an admin key sees all; callers without a key are refused unless the
// coordinator allows them; per-key quotas (units in flight, stored bytes, requests per minute)
// answer 429 with Retry-After; uploads expire after their retention, shared bytes only when no
// owner holds them. Every attack here goes through the real HTTP API, Redis and NATS.
import test, { type ExecutionContext } from 'ava'
import { Redis } from 'ioredis'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  ANONYMOUS_QUOTA,
  apiKeyDigest,
  DEFAULT_TUNING,
  type CoordinatorTuning,
} from '../coordinator/index.js'
import { CHUNK_BYTES, manifestOf } from '../shared/index.js'
import { spawnCohort, startCluster, waitForJob, waitUntil, type Cluster } from './helpers/cluster.js'
import { useServices } from './helpers/services.js'
import { fnvModule, fnv1aBase64, withCustomSection } from './helpers/wasm.js'
import { connect } from '../client/index.js'

const services = useServices(test)
const RETENTION = DEFAULT_TUNING.uploadRetentionMs

const KEY_A = `a-${'1'.repeat(40)}`
const KEY_B = `b-${'2'.repeat(40)}`
const KEY_ADMIN = `z-${'3'.repeat(40)}`
const keys = (quota: Record<string, unknown> = {}): CoordinatorTuning['apiKeys'] => [
  { name: 'alice', role: 'submitter', sha256: apiKeyDigest(KEY_A), quota },
  { name: 'bob', role: 'submitter', sha256: apiKeyDigest(KEY_B), quota },
  { name: 'ops', role: 'admin', sha256: apiKeyDigest(KEY_ADMIN) },
]

interface Reply {
  status: number
  type: string
  headers: Headers
  body: Record<string, unknown>
}

async function call(
  base: string,
  method: string,
  path: string,
  o: {
    key?: string
    json?: unknown
    bytes?: Uint8Array
    type?: string
    headers?: Record<string, string>
  } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...o.headers }
  if (o.key !== undefined) headers['authorization'] = `Bearer ${o.key}`
  let body: BodyInit | undefined
  if (o.json !== undefined) {
    headers['content-type'] = 'application/json'
    body = JSON.stringify(o.json)
  } else if (o.bytes !== undefined) {
    headers['content-type'] = o.type ?? 'application/octet-stream'
    body = o.bytes as Uint8Array<ArrayBuffer>
  }
  const res = await fetch(new URL(path, base), { method, headers, ...(body === undefined ? {} : { body }) })
  const text = await res.text()
  let parsed: Record<string, unknown>
  try {
    parsed = JSON.parse(text) as Record<string, unknown>
  } catch {
    parsed = { text }
  }
  return {
    status: res.status,
    type: res.headers.get('content-type') ?? '',
    headers: res.headers,
    body: parsed,
  }
}

async function cluster(
  t: ExecutionContext,
  tuning: Partial<CoordinatorTuning>,
  coordinators = 1,
): Promise<Cluster> {
  const c = await startCluster({
    services: services(),
    coordinators,
    tuning: { anonymous: false, ...tuning },
  })
  t.teardown(() => c.stop())
  return c
}

function redisOf(t: ExecutionContext): Redis {
  const redis = new Redis(services().redisUrl)
  t.teardown(() => redis.quit())
  return redis
}

function isProblem(t: ExecutionContext, r: Reply, status: number, code: string): void {
  t.is(r.status, status, JSON.stringify(r.body))
  t.regex(r.type, /^application\/problem\+json/)
  t.like(r.body, { type: `urn:cohort:problem:${code}`, status })
}

/** 429 naming `quota`, with a Retry-After of whole seconds (at least 1) matching the body. */
function isQuota(t: ExecutionContext, r: Reply, quota: string): void {
  isProblem(t, r, 429, 'quota-exceeded')
  t.is(r.body['quota'], quota)
  const after = Number(r.headers.get('retry-after'))
  t.true(Number.isInteger(after) && after >= 1, `Retry-After ${r.headers.get('retry-after')}`)
  t.is(r.body['retryAfter'], after)
}

const JOB = { type: 'primes', params: { to: 100_000, unitSize: 10_000 } }

test('owners - key A can neither list, read, fetch the result of nor cancel key B’s job (404); an admin can', async (t) => {
  const c = await cluster(t, { apiKeys: keys({ requestsPerMinute: null }) })
  const url = c.coordinators[0]!.url
  const made = await call(url, 'POST', '/v1/jobs', { key: KEY_A, json: JOB })
  t.is(made.status, 201, JSON.stringify(made.body))
  const id = made.body['id'] as string
  const unknown = await call(url, 'GET', `/v1/jobs/${'x'.repeat(id.length)}`, { key: KEY_B })

  // Bob: another owner's job is as absent as one that does not exist.
  for (const [method, path] of [
    ['GET', `/v1/jobs/${id}`],
    ['GET', `/v1/jobs/${id}/result`],
    ['DELETE', `/v1/jobs/${id}`],
  ] as const) {
    const r = await call(url, method, path, { key: KEY_B })
    isProblem(t, r, 404, 'job-not-found')
    t.is(r.body['title'], unknown.body['title'])
  }
  t.deepEqual((await call(url, 'GET', '/v1/jobs', { key: KEY_B })).body['jobs'], [])
  // Bob's cancel did nothing; Alice sees her job, still waiting (no workers yet).
  const mine = await call(url, 'GET', `/v1/jobs/${id}`, { key: KEY_A })
  t.is(mine.status, 200)
  t.is(mine.body['state'], 'queued')
  isProblem(t, await call(url, 'GET', `/v1/jobs/${id}/result`, { key: KEY_A }), 409, 'result-not-ready')
  const listA = (await call(url, 'GET', '/v1/jobs', { key: KEY_A })).body['jobs'] as { id: string }[]
  t.deepEqual(
    listA.map((j) => j.id),
    [id],
  )
  // The admin sees every owner's jobs.
  t.is((await call(url, 'GET', `/v1/jobs/${id}`, { key: KEY_ADMIN })).status, 200)
  const listAdmin = (await call(url, 'GET', '/v1/jobs', { key: KEY_ADMIN })).body['jobs'] as { id: string }[]
  t.true(listAdmin.some((j) => j.id === id))

  // Once computed, the result is Alice's (and the admin's) alone.
  await c.addWorker()
  await c.addWorker()
  await waitForJob(connect({ url: url, apiKey: KEY_A }), id)
  const result = await call(url, 'GET', `/v1/jobs/${id}/result`, { key: KEY_A })
  t.is(result.status, 200)
  t.is((result.body['result'] as { count: number }).count, 9592)
  isProblem(t, await call(url, 'GET', `/v1/jobs/${id}/result`, { key: KEY_B }), 404, 'job-not-found')
  t.deepEqual(
    (await call(url, 'GET', `/v1/jobs/${id}/result`, { key: KEY_ADMIN })).body['result'],
    result.body['result'],
  )

  // The admin cancels another owner's job.
  for (const w of c.workers) await w.stop()
  const second = await call(url, 'POST', '/v1/jobs', { key: KEY_A, json: JOB })
  const id2 = second.body['id'] as string
  isProblem(t, await call(url, 'DELETE', `/v1/jobs/${id2}`, { key: KEY_B }), 404, 'job-not-found')
  const cancelled = await call(url, 'DELETE', `/v1/jobs/${id2}`, { key: KEY_ADMIN })
  t.is(cancelled.status, 200, JSON.stringify(cancelled.body))
  t.is(cancelled.body['state'], 'cancelled')
})

test('owners - without a key the API answers 401 telling how to authenticate; public paths stay open', async (t) => {
  const c = await cluster(t, { apiKeys: keys() })
  const url = c.coordinators[0]!.url
  const none = await call(url, 'POST', '/v1/jobs', { json: JOB })
  isProblem(t, none, 401, 'unauthorized')
  t.regex(String(none.body['detail']), /Authorization: Bearer <key>.*--api-key or COHORT_API_KEY/)
  t.regex(none.headers.get('www-authenticate') ?? '', /^Bearer/)
  for (const path of ['/v1/jobs', '/v1/blobs/' + '0'.repeat(64), '/v1/datasets/' + '0'.repeat(64)])
    isProblem(t, await call(url, 'GET', path), 401, 'unauthorized')
  isProblem(
    t,
    await call(url, 'GET', '/v1/jobs', { key: 'not-a-key-of-this-coordinator-at-all' }),
    401,
    'unauthorized',
  )
  isProblem(
    t,
    await call(url, 'GET', '/v1/jobs', { headers: { authorization: 'Basic abc' } }),
    401,
    'unauthorized',
  )
  // Health, job types and the volunteers' sign-up (its own limits) need no key.
  t.is((await call(url, 'GET', '/healthz')).status, 200)
  t.is((await call(url, 'GET', '/v1/job-types')).status, 200)
  t.not((await call(url, 'GET', '/v1/volunteers')).status, 401)
  t.not((await call(url, 'POST', '/v1/volunteers/sign-up', { json: {} })).status, 401)
  t.not((await call(url, 'GET', '/contribute')).status, 401)
  // No job was created by the refused calls.
  t.deepEqual((await call(url, 'GET', '/v1/jobs', { key: KEY_ADMIN })).body['jobs'], [])
})

test('owners - with anonymous on, callers without a key are one owner of their own', async (t) => {
  const c = await cluster(t, { apiKeys: keys(), anonymous: true, anonymousQuota: ANONYMOUS_QUOTA })
  const url = c.coordinators[0]!.url
  const anon = await call(url, 'POST', '/v1/jobs', { json: JOB })
  t.is(anon.status, 201, JSON.stringify(anon.body))
  const id = anon.body['id'] as string
  t.is((await call(url, 'GET', `/v1/jobs/${id}`)).status, 200)
  isProblem(t, await call(url, 'GET', `/v1/jobs/${id}`, { key: KEY_A }), 404, 'job-not-found')
  // A wrong key is refused, not taken as anonymous.
  isProblem(t, await call(url, 'GET', `/v1/jobs/${id}`, { key: 'x'.repeat(40) }), 401, 'unauthorized')
})

test('quotas - the anonymous POST of 10,000 units × quorum 10 at priority 100 is refused and writes nothing', async (t) => {
  const c = await cluster(t, { apiKeys: keys(), anonymous: true, anonymousQuota: ANONYMOUS_QUOTA })
  const url = c.coordinators[0]!.url
  const big = {
    type: 'primes',
    params: { to: 10_000_000, unitSize: 1000 },
    redundancy: { quorum: 10 },
    priority: 100,
  }
  const r = await call(url, 'POST', '/v1/jobs', { json: big })
  isProblem(t, r, 422, 'invalid-request')
  t.is(r.body['field'], 'priority')
  // Without the priority it is still 10 times the anonymous units in flight.
  isQuota(t, await call(url, 'POST', '/v1/jobs', { json: { ...big, priority: 0 } }), 'unitsInFlight')
  const redis = redisOf(t)
  t.deepEqual(await redis.keys(`${c.redisPrefix}job:*`), [])
  t.deepEqual(await redis.keys(`${c.redisPrefix}unit:*`), [])
  // A submitter key may not outrank either, beyond its own maximum (10 by default).
  const high = await call(url, 'POST', '/v1/jobs', { key: KEY_A, json: { ...JOB, priority: 11 } })
  t.is(high.body['field'], 'priority')
  t.is((await call(url, 'POST', '/v1/jobs', { key: KEY_ADMIN, json: { ...JOB, priority: 100 } })).status, 201)
})

test('quotas - units in flight past the quota are 429 with Retry-After; they come back when a job ends', async (t) => {
  const c = await cluster(t, { apiKeys: keys({ unitsInFlight: 15 }) })
  const url = c.coordinators[0]!.url
  // JOB has 10 units.
  const first = await call(url, 'POST', '/v1/jobs', { key: KEY_A, json: JOB })
  t.is(first.status, 201)
  const over = await call(url, 'POST', '/v1/jobs', { key: KEY_A, json: JOB })
  isQuota(t, over, 'unitsInFlight')
  t.regex(String(over.body['detail']), /10 units and 10 of the 15 units in flight/)
  // Another owner has its own count.
  t.is((await call(url, 'POST', '/v1/jobs', { key: KEY_B, json: JOB })).status, 201)
  // Cancelled, the first job's units are given back (when the finished job is swept).
  await call(url, 'DELETE', `/v1/jobs/${String(first.body['id'])}`, { key: KEY_A })
  await waitUntil('the cancelled job’s units are given back', async () => {
    const r = await call(url, 'POST', '/v1/jobs', { key: KEY_A, json: JOB })
    return r.status === 201
  })
  t.pass()
})

test('quotas - stored bytes past the quota are 429; the same bytes again cost nothing; a dataset is stopped at the room left', async (t) => {
  const c = await cluster(t, { apiKeys: keys({ storedBytes: 3000 }) })
  const url = c.coordinators[0]!.url
  const x = new Uint8Array(randomBytes(2000))
  t.is((await call(url, 'POST', '/v1/blobs', { key: KEY_A, bytes: x })).status, 201)
  t.is((await call(url, 'POST', '/v1/blobs', { key: KEY_A, bytes: x })).status, 200)
  isQuota(
    t,
    await call(url, 'POST', '/v1/blobs', { key: KEY_A, bytes: new Uint8Array(randomBytes(2000)) }),
    'storedBytes',
  )
  isQuota(
    t,
    await call(url, 'POST', '/v1/datasets', { key: KEY_A, bytes: new Uint8Array(randomBytes(1500)) }),
    'storedBytes',
  )
  // Bob uploading the same bytes holds them too, on his own quota: 201 for him.
  t.is((await call(url, 'POST', '/v1/blobs', { key: KEY_B, bytes: x })).status, 201)
  t.is(await c.coordinators[0]!.uploads.bytes('alice'), 2000)
  t.is(await c.coordinators[0]!.uploads.bytes('bob'), 2000)
  // Streamed without a declared length, the upload is stopped once it passes the room left.
  const stream = new ReadableStream<Uint8Array>({
    start(ctl) {
      for (let i = 0; i < 4; i++) ctl.enqueue(new Uint8Array(randomBytes(1000)))
      ctl.close()
    },
  })
  const res = await fetch(`${url}/v1/datasets`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY_A}`, 'content-type': 'application/octet-stream' },
    body: stream,
    duplex: 'half',
  } as RequestInit)
  t.is(res.status, 429)
  t.is(((await res.json()) as { quota: string }).quota, 'storedBytes')
  t.deepEqual(await redisOf(t).keys(`${c.redisPrefix}manifest:*`), [])
})

test('quotas - requests past the per-minute quota are 429 with Retry-After, counted across coordinators', async (t) => {
  const c = await cluster(t, { apiKeys: keys({ requestsPerMinute: 2 }) }, 2)
  const [one, two] = c.coordinators.map((x) => x.url) as [string, string]
  t.is((await call(one, 'GET', '/v1/jobs', { key: KEY_A })).status, 200)
  t.is((await call(two, 'GET', '/v1/jobs', { key: KEY_A })).status, 200)
  const third = await call(one, 'GET', '/v1/jobs', { key: KEY_A })
  isQuota(t, third, 'requestsPerMinute')
  t.true(Number(third.headers.get('retry-after')) <= 30)
  isQuota(t, await call(two, 'GET', '/v1/jobs', { key: KEY_A }), 'requestsPerMinute')
  // Bob's bucket is his own; public paths take no token.
  t.is((await call(two, 'GET', '/v1/jobs', { key: KEY_B })).status, 200)
  t.is((await call(one, 'GET', '/v1/job-types', { key: KEY_A })).status, 200)
})

test('owners - uploads are private: others get 404 and their jobs cannot name them until they upload the same bytes', async (t) => {
  const c = await cluster(t, { apiKeys: keys({ requestsPerMinute: null }) })
  const url = c.coordinators[0]!.url
  const module = await fnvModule()
  const lines = new TextEncoder().encode('alice\nsecret\nlines\n')
  const mod = await call(url, 'POST', '/v1/modules', { key: KEY_A, bytes: module, type: 'application/wasm' })
  t.is(mod.status, 201)
  const blob = await call(url, 'POST', '/v1/blobs', { key: KEY_A, bytes: lines })
  const data = await call(url, 'POST', '/v1/datasets', { key: KEY_A, bytes: lines })
  const [m, b, d] = [mod.body['hash'], blob.body['hash'], data.body['root']] as [string, string, string]
  for (const path of [
    `/v1/modules/${m}`,
    `/v1/modules/${m}/info`,
    `/v1/blobs/${b}`,
    `/v1/datasets/${d}`,
    `/v1/datasets/${d}/data`,
  ]) {
    t.is((await call(url, 'GET', path, { key: KEY_A })).status, 200, path)
    isProblem(
      t,
      await call(url, 'GET', path, { key: KEY_B }),
      404,
      path.split('/')[2] === 'modules'
        ? 'module-not-found'
        : path.split('/')[2] === 'blobs'
          ? 'blob-not-found'
          : 'dataset-not-found',
    )
    t.is((await call(url, 'GET', path, { key: KEY_ADMIN })).status, 200, path)
  }
  // Bob's job naming Alice's blob is refused as if the blob did not exist: nothing of it is read.
  const job = (blobHash: string) => ({
    type: 'wasm',
    params: { module: m, input: { blob: blobHash, split: 'lines' } },
  })
  const viaBlob = await call(url, 'POST', '/v1/jobs', { key: KEY_B, json: job(b) })
  isProblem(t, viaBlob, 422, 'invalid-request')
  t.is(viaBlob.body['field'], 'params.input.blob')
  t.deepEqual(
    { ...viaBlob.body, instance: undefined },
    {
      ...(await call(url, 'POST', '/v1/jobs', { key: KEY_B, json: job('f'.repeat(64)) })).body,
      instance: undefined,
      detail: viaBlob.body['detail'],
    },
  )
  // With his own copy of the blob, Alice's module is still not his.
  t.is((await call(url, 'POST', '/v1/blobs', { key: KEY_B, bytes: lines })).status, 201)
  const viaModule = await call(url, 'POST', '/v1/jobs', { key: KEY_B, json: job(b) })
  isProblem(t, viaModule, 422, 'invalid-request')
  t.regex(
    String(viaModule.body['detail']),
    new RegExp(`names content ${m} that this API key has not uploaded`),
  )
  t.is(
    (await call(url, 'POST', '/v1/modules', { key: KEY_B, bytes: module, type: 'application/wasm' })).status,
    201,
  )
  const ok = await call(url, 'POST', '/v1/jobs', { key: KEY_B, json: job(b) })
  t.is(ok.status, 201, JSON.stringify(ok.body))
  await c.addWorker()
  await c.addWorker()
  const done = await waitForJob(connect({ url: url, apiKey: KEY_B }), ok.body['id'] as string)
  t.is(done.state, 'completed')
  const result = await call(url, 'GET', `/v1/jobs/${String(ok.body['id'])}/result`, { key: KEY_B })
  t.deepEqual(result.body['result'], { outputs: ['alice', 'secret', 'lines'].map(fnv1aBase64), records: 3 })
})

test('retention - a hold ends at its expiry; bytes two owners uploaded, and chunks two datasets share, outlive the first', async (t) => {
  const c = await cluster(t, { apiKeys: keys() })
  const url = c.coordinators[0]!.url
  const uploads = c.coordinators[0]!.uploads
  const redis = redisOf(t)
  const x = new Uint8Array(randomBytes(3000))
  const hash = (await call(url, 'POST', '/v1/blobs', { key: KEY_A, bytes: x })).body['hash'] as string
  const expiresA = (await uploads.expiresAt('blob', hash, 'alice'))!
  // Bob uploads later than Alice (his hold expires later): wait for the clock to pass her upload.
  await waitUntil('the clock moves on', () => Date.now() > expiresA - RETENTION + 1)
  t.is((await call(url, 'POST', '/v1/blobs', { key: KEY_B, bytes: x })).status, 201)
  const expiresB = (await uploads.expiresAt('blob', hash, 'bob'))!
  t.true(expiresB > expiresA)
  await uploads.expire(expiresA, 100)
  isProblem(t, await call(url, 'GET', `/v1/blobs/${hash}`, { key: KEY_A }), 404, 'blob-not-found')
  t.is((await call(url, 'GET', `/v1/blobs/${hash}`, { key: KEY_B })).status, 200)
  t.is(await uploads.bytes('alice'), 0)
  await uploads.expire(expiresB, 100)
  t.is(await redis.exists(`${c.redisPrefix}blob:${hash}`), 0)
  t.is(await uploads.bytes('bob'), 0)

  // Datasets X+Y and X+Z share X's chunk: when the first expires, X's chunk stays for the second.
  const chunk = () => new Uint8Array(randomBytes(CHUNK_BYTES))
  const [cx, cy, cz] = [chunk(), chunk(), chunk()]
  const xy = Buffer.concat([cx, cy])
  const xz = Buffer.concat([cx, cz])
  const rootXY = (await call(url, 'POST', '/v1/datasets', { key: KEY_A, bytes: xy })).body['root'] as string
  const first = (await uploads.expiresAt('dataset', rootXY, 'alice'))!
  await waitUntil('the clock moves on', () => Date.now() > first - RETENTION + 1)
  const rootXZ = (await call(url, 'POST', '/v1/datasets', { key: KEY_A, bytes: xz })).body['root'] as string
  const { manifest: mXY } = await manifestOf(xy)
  const hexOf = (i: number) => Buffer.from(mXY.chunks.subarray(i * 32, i * 32 + 32)).toString('hex')
  await uploads.expire(first, 100)
  t.is(await redis.exists(`${c.redisPrefix}manifest:${rootXY}`), 0)
  t.is(await redis.exists(`${c.redisPrefix}chunk:${hexOf(1)}`), 0, 'Y is gone')
  t.is(await redis.exists(`${c.redisPrefix}chunk:${hexOf(0)}`), 1, 'X stays')
  const back = await fetch(`${url}/v1/datasets/${rootXZ}/data`, {
    headers: { authorization: `Bearer ${KEY_A}` },
  })
  t.true(Buffer.from(await back.arrayBuffer()).equals(xz))
})

test('retention - the coordinator deletes expired uploads by itself: blobs, modules with their chunked form, datasets', async (t) => {
  const c = await cluster(t, { apiKeys: keys(), uploadRetentionMs: 1000, sweepIntervalMs: 200 })
  const url = c.coordinators[0]!.url
  const redis = redisOf(t)
  const bigModule = withCustomSection(await fnvModule(), 2 * CHUNK_BYTES, 7)
  const mod = await call(url, 'POST', '/v1/modules', {
    key: KEY_A,
    bytes: bigModule,
    type: 'application/wasm',
  })
  t.is(mod.status, 201, JSON.stringify(mod.body))
  const blob = await call(url, 'POST', '/v1/blobs', { key: KEY_A, bytes: new Uint8Array(randomBytes(500)) })
  const data = await call(url, 'POST', '/v1/datasets', {
    key: KEY_A,
    bytes: new Uint8Array(randomBytes(CHUNK_BYTES + 10)),
  })
  t.is(blob.status, 201)
  t.is(data.status, 201)
  const p = c.redisPrefix
  await waitUntil('every upload is deleted', async () => {
    const left = await redis.keys(`${p}*`)
    return !left.some((k) => /:(module|blob|manifest|chunk|holders):/.test(k) || k.endsWith('chunkrefs'))
  })
  for (const path of [
    `/v1/modules/${String(mod.body['hash'])}`,
    `/v1/blobs/${String(blob.body['hash'])}`,
    `/v1/datasets/${String(data.body['root'])}`,
  ])
    t.is((await call(url, 'GET', path, { key: KEY_ADMIN })).status, 404, path)
  t.is(await c.coordinators[0]!.uploads.bytes('alice'), 0)
})

/** Run `cohort <args>` to its end; its exit code and output lines. */
async function runCohort(args: string[], env: Record<string, string> = {}) {
  const run = spawnCohort(args, env)
  const [code] = (await once(run.child, 'exit')) as [number | null]
  return { code, out: run.lines.join('\n') }
}

test('cli - cohort coordinator takes its keys from --api-keys-file or COHORT_API_KEYS_FILE; the CLI sends --api-key or COHORT_API_KEY', async (t) => {
  const c = await startCluster({ services: services(), coordinators: 0 })
  t.teardown(() => c.stop())
  const dir = await mkdtemp(join(tmpdir(), 'cohort-keys-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const keysFile = join(dir, 'keys.json')
  await writeFile(keysFile, JSON.stringify({ keys: keys() }))
  const base = c.coordinatorArgs(await c.writeCoordinatorKey(dir))
  for (const how of ['flag', 'env'] as const) {
    const coordinator =
      how === 'flag'
        ? spawnCohort([...base, '--api-keys-file', keysFile], c.coordinatorEnv)
        : spawnCohort(base, { ...c.coordinatorEnv, COHORT_API_KEYS_FILE: keysFile })
    t.teardown(() => coordinator.kill('SIGTERM'))
    const line = await coordinator.waitForLine(/coordinator listening on/)
    const url = /listening on (http:\/\/\S+);/.exec(line)![1]!
    const submit = ['submit', 'primes', '--param', 'to=100000', '--url', url]
    const anonymous = await runCohort(submit)
    t.not(anonymous.code, 0)
    t.regex(anonymous.out, /401 Unauthorized: this coordinator needs an API key/)
    const byFlag = await runCohort([...submit, '--api-key', KEY_A])
    t.is(byFlag.code, 0, byFlag.out)
    const id = /^[A-Za-z0-9_-]{22}$/m.exec(byFlag.out)![0]
    const status = ['status', id, '--url', url]
    const own = await runCohort(status, { COHORT_API_KEY: KEY_A })
    t.is(own.code, 0, own.out)
    const other = await runCohort(status, { COHORT_API_KEY: KEY_B })
    t.not(other.code, 0)
    t.regex(other.out, /404 Not Found: no job with id/)
    await coordinator.kill('SIGTERM')
  }
  // A bad keys file stops the coordinator with a message naming the file and the field.
  await writeFile(keysFile, JSON.stringify({ keys: [{ name: 'x', role: 'root', key: KEY_A }] }))
  const bad = await runCohort([...base, '--api-keys-file', keysFile], c.coordinatorEnv)
  t.is(bad.code, 2)
  t.regex(bad.out, /keys\.json: keys\[0\]\.role must be "submitter" or "admin"/)
})
