// The HTTP API: bad input gets a 4xx application/problem+json that names the problem, and the
// coordinator keeps serving afterwards (health 200, a valid submission 201).
import test, { type ExecutionContext } from 'ava'
import { newJobId } from '../coordinator/http/jobs-routes.js'
import { request as httpRequest } from 'node:http'
import { decode, isErrorReply, type UnitPayload } from '../shared/index.js'
import { startCluster, waitForJob, waitUntil, type Cluster } from './helpers/cluster.js'
import { PRIMES } from './helpers/protocol-fixtures.js'
import { rawVolunteer } from './helpers/volunteer.js'
import { useServices } from './helpers/services.js'

const services = useServices(test)

const JSON_TYPE = { 'content-type': 'application/json' }
const VALID_JOB = { type: 'primes', params: { to: 100_000 } }

interface Reply {
  status: number
  type: string
  body: Record<string, unknown>
}

async function call(base: string, method: string, path: string, init: RequestInit = {}): Promise<Reply> {
  const res = await fetch(new URL(path, base), { method, ...init })
  const text = await res.text()
  let body: Record<string, unknown>
  try {
    body = JSON.parse(text) as Record<string, unknown>
  } catch {
    body = { text }
  }
  return { status: res.status, type: res.headers.get('content-type') ?? '', body }
}

async function withCluster(fn: (cluster: Cluster, url: string) => Promise<void>) {
  const cluster = await startCluster({ services: services() })
  try {
    await fn(cluster, cluster.coordinators[0]!.url)
  } finally {
    await cluster.stop()
  }
}

/**
 * The reply is a problem document of `status` with problem type `code`, and the coordinator at
 * `url` still serves afterwards.
 */
async function isProblem(t: ExecutionContext, url: string, r: Reply, status: number, code: string) {
  t.is(r.status, status, JSON.stringify(r.body))
  t.regex(r.type, /^application\/problem\+json/)
  t.like(r.body, { type: `urn:cohort:problem:${code}`, status })
  t.is(typeof r.body['title'], 'string')
  t.is(typeof r.body['detail'], 'string')
  t.true((r.body['detail'] as string).length > 0)
  await stillServes(t, url)
}

/** After a bad request the coordinator is healthy and still takes a valid job. */
async function stillServes(t: ExecutionContext, url: string): Promise<void> {
  const health = await call(url, 'GET', '/healthz')
  t.is(health.status, 200)
  t.like(health.body, { ok: true, redis: 'up', nats: 'up' })
  const created = await call(url, 'POST', '/v1/jobs', { headers: JSON_TYPE, body: JSON.stringify(VALID_JOB) })
  t.is(created.status, 201, JSON.stringify(created.body))
  t.like(created.body, { type: 'primes' })
}

const post = (url: string, body: unknown, headers: Record<string, string> = JSON_TYPE) =>
  call(url, 'POST', '/v1/jobs', { headers, body: typeof body === 'string' ? body : JSON.stringify(body) })

test('http api - malformed JSON is 400', (t) =>
  withCluster(async (_c, url) => {
    const r = await post(url, '{"type": "primes", "params": {')
    await isProblem(t, url, r, 400, 'malformed-json')
    t.regex(r.body['detail'] as string, /not valid JSON/)
    t.is(r.body['instance'], '/v1/jobs')
    await isProblem(t, url, await post(url, ''), 400, 'malformed-json')
  }))

test('http api - a body that is not JSON by content type is 415', (t) =>
  withCluster(async (_c, url) => {
    const r = await post(url, JSON.stringify(VALID_JOB), { 'content-type': 'text/plain' })
    await isProblem(t, url, r, 415, 'unsupported-media-type')
    t.regex(r.body['detail'] as string, /application\/json/)
    await isProblem(
      t,
      url,
      await post(url, 'a=1', { 'content-type': 'application/x-www-form-urlencoded' }),
      415,
      'unsupported-media-type',
    )
  }))

test('http api - an unknown job type is 422 naming the field type', (t) =>
  withCluster(async (_c, url) => {
    const r = await post(url, { type: 'no-such-type', params: {} })
    await isProblem(t, url, r, 422, 'invalid-request')
    t.is(r.body['field'], 'type')
    t.regex(r.body['detail'] as string, /no-such-type/)
    const v = await post(url, { type: 'primes', version: 99, params: { to: 1000 } })
    await isProblem(t, url, v, 422, 'invalid-request')
    t.is(v.body['field'], 'type')
  }))

test('http api - invalid params are 422 naming the parameter', (t) =>
  withCluster(async (_c, url) => {
    const r = await post(url, { type: 'primes', params: { to: -5 } })
    await isProblem(t, url, r, 422, 'invalid-request')
    t.is(r.body['field'], 'params.to')
    t.regex(r.body['detail'] as string, /params\.to/)
    const missing = await post(url, { type: 'primes', params: {} })
    await isProblem(t, url, missing, 422, 'invalid-request')
    t.is(missing.body['field'], 'params.to')
    const extra = await post(url, { type: 'primes', params: { to: 1000, colour: 'red' } })
    await isProblem(t, url, extra, 422, 'invalid-request')
    t.is(extra.body['field'], 'params.colour')
    const order = await post(url, { type: 'primes', params: { from: 500, to: 100 } })
    await isProblem(t, url, order, 422, 'invalid-request')
    t.is(order.body['field'], 'params.from')
  }))

test('http api - an unknown top-level field is 422', (t) =>
  withCluster(async (_c, url) => {
    const r = await post(url, { ...VALID_JOB, colour: 'red' })
    await isProblem(t, url, r, 422, 'invalid-request')
    t.is(r.body['field'], 'colour')
    t.regex(r.body['detail'] as string, /unknown field/)
    const arr = await post(url, [VALID_JOB])
    await isProblem(t, url, arr, 422, 'invalid-request')
    t.is(arr.body['field'], 'body')
  }))

test('http api - a quorum of 0 is 422 naming redundancy.quorum', (t) =>
  withCluster(async (_c, url) => {
    const r = await post(url, { ...VALID_JOB, redundancy: { quorum: 0 } })
    await isProblem(t, url, r, 422, 'invalid-request')
    t.is(r.body['field'], 'redundancy.quorum')
    const replicas = await post(url, { ...VALID_JOB, redundancy: { quorum: 3, maxReplicas: 2 } })
    await isProblem(t, url, replicas, 422, 'invalid-request')
    t.is(replicas.body['field'], 'redundancy.maxReplicas')
  }))

test('http api - a body over 64 KiB is 413', (t) =>
  withCluster(async (_c, url) => {
    const big = JSON.stringify({ ...VALID_JOB, pad: 'x'.repeat(70 * 1024) })
    const r = await post(url, big)
    await isProblem(t, url, r, 413, 'too-large')
    t.regex(r.body['detail'] as string, /65536/)
  }))

/** POST a body in chunks without Content-Length, with node:http (fetch would not show a reset). */
function postChunked(url: string, chunks: string[]): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      new URL('/v1/jobs', url),
      { method: 'POST', headers: { ...JSON_TYPE, 'transfer-encoding': 'chunked' } },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => (text += d))
        res.on('end', () => {
          let body: Record<string, unknown>
          try {
            body = JSON.parse(text) as Record<string, unknown>
          } catch {
            body = { text }
          }
          resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'] ?? '', body })
        })
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    for (const c of chunks) req.write(c)
    req.end()
  })
}

test('http api - a streamed body over 64 KiB without Content-Length is 413', (t) =>
  withCluster(async (_c, url) => {
    const chunks = ['{"type":"primes","params":{"to":1000},"pad":"']
    for (let i = 0; i < 80; i++) chunks.push('x'.repeat(1024))
    chunks.push('"}')
    const r = await postChunked(url, chunks)
    await isProblem(t, url, r, 413, 'too-large')
  }))

test('http api - an unknown job id is 404', (t) =>
  withCluster(async (_c, url) => {
    for (const path of ['/v1/jobs/no-such-job', '/v1/jobs/no-such-job/result', '/v1/jobs/bad%20id']) {
      const r = await call(url, 'GET', path)
      await isProblem(t, url, r, 404, 'job-not-found')
    }
    await isProblem(t, url, await call(url, 'DELETE', '/v1/jobs/no-such-job'), 404, 'job-not-found')
  }))

test('http api - the result of an unfinished job is 409', (t) =>
  withCluster(async (_c, url) => {
    const created = await post(url, VALID_JOB)
    t.is(created.status, 201)
    const id = created.body['id'] as string
    const r = await call(url, 'GET', `/v1/jobs/${id}/result`)
    await isProblem(t, url, r, 409, 'result-not-ready')
    t.true(r.body['state'] === 'queued' || r.body['state'] === 'running')
    t.regex(r.body['detail'] as string, /try again later/)
  }))

test('http api - cancelling a running job is 200; cancelling it again is 409', (t) =>
  withCluster(async (cluster, url) => {
    const created = await post(url, VALID_JOB)
    t.is(created.status, 201)
    const id = created.body['id'] as string
    await waitUntil('the job to be planned', async () => (await cluster.api.job(id)).units.planned, 30_000)
    // Lease its replica, as a worker would, so that the job is running.
    const { client } = await rawVolunteer(t, cluster)
    const grant = await client.requestWork(1, [PRIMES])
    t.is(grant.units.length, 1)
    t.is((await cluster.api.job(id)).state, 'running')

    const r = await call(url, 'DELETE', `/v1/jobs/${id}`)
    t.is(r.status, 200, JSON.stringify(r.body))
    t.regex(r.type, /^application\/json/)
    t.like(r.body, { id, state: 'cancelled' })
    t.is((await cluster.api.job(id)).state, 'cancelled')
    // The worker learns that its lease is gone.
    const { replicaId } = decode(grant.units[0]!.body) as UnitPayload
    const renewed = await client.renew([replicaId])
    t.false(isErrorReply(renewed))
    t.deepEqual(renewed.lost, [replicaId])

    const again = await call(url, 'DELETE', `/v1/jobs/${id}`)
    await isProblem(t, url, again, 409, 'job-finished')
    t.is(again.body['state'], 'cancelled')
    const result = await call(url, 'GET', `/v1/jobs/${id}/result`)
    await isProblem(t, url, result, 409, 'result-not-ready')
    t.regex(result.body['detail'] as string, /cancelled/)
  }))

test('http api - cancelling a completed job is 409 and its result stays available', (t) =>
  withCluster(async (cluster, url) => {
    await cluster.addWorker()
    const created = await post(url, { ...VALID_JOB, redundancy: { quorum: 1 } })
    t.is(created.status, 201)
    const id = created.body['id'] as string
    t.is((await waitForJob(cluster.api, id, 30_000)).state, 'completed')
    const r = await call(url, 'DELETE', `/v1/jobs/${id}`)
    await isProblem(t, url, r, 409, 'job-finished')
    t.is(r.body['state'], 'completed')
    const result = await call(url, 'GET', `/v1/jobs/${id}/result`)
    t.is(result.status, 200)
    t.like(result.body, { id, type: 'primes', result: { count: 9592, from: 0, to: 100_000 } })
  }))

test('http api - an unknown route is 404', (t) =>
  withCluster(async (_c, url) => {
    for (const path of ['/v1/nope', '/', '/v2/jobs']) {
      const r = await call(url, 'GET', path)
      await isProblem(t, url, r, 404, 'not-found')
      t.is(r.body['instance'], path)
    }
  }))

test('http api - a wrong method is 405', (t) =>
  withCluster(async (_c, url) => {
    const put = await call(url, 'PUT', '/v1/jobs', { headers: JSON_TYPE, body: '{}' })
    await isProblem(t, url, put, 405, 'method-not-allowed')
    const patch = await call(url, 'PATCH', '/v1/jobs/some-id', { headers: JSON_TYPE, body: '{}' })
    await isProblem(t, url, patch, 405, 'method-not-allowed')
    await isProblem(t, url, await call(url, 'POST', '/v1/job-types'), 405, 'method-not-allowed')
  }))

test('http api - GET /v1/job-types lists every built-in job type', (t) =>
  withCluster(async (_c, url) => {
    const r = await call(url, 'GET', '/v1/job-types')
    t.is(r.status, 200)
    t.regex(r.type, /^application\/json/)
    const types = r.body['jobTypes'] as { name: string; version: number; paramsSchema: unknown }[]
    t.deepEqual(types.map((x) => `${x.name}@${x.version}`).sort(), [
      'knn@1',
      'nqueens@1',
      'primes@1',
      'wasm@1',
    ])
    for (const x of types) t.is(typeof x.paramsSchema, 'object')
  }))

test('http api - GET /healthz is 200 with Redis and NATS up', (t) =>
  withCluster(async (cluster, url) => {
    const r = await call(url, 'GET', '/healthz')
    t.is(r.status, 200)
    t.deepEqual(r.body, { ok: true, redis: 'up', nats: 'up' })
    // Every refusal above is counted, and /v1/stats shows the counters.
    await call(url, 'GET', '/v1/nope')
    const stats = await call(url, 'GET', '/v1/stats')
    t.is(stats.status, 200)
    t.like(stats.body, { counters: { httpErrors: 1 } })
    t.is(cluster.coordinators[0]!.counters.httpErrors, 1)
  }))

test('http api - job ids never start with "-", so the CLI never takes one for an option', (t) => {
  // 1 in 64 random base64url ids would: among 5,000, all but certainly some.
  const ids = Array.from({ length: 5_000 }, newJobId)
  t.deepEqual(
    ids.filter((id) => id.startsWith('-')),
    [],
  )
  t.true(ids.every((id) => /^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/.test(id)))
})
