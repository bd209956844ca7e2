// The API's schemas: GET /openapi.json is a valid OpenAPI 3.1 document that names every route the
// routers register, errors are problem+json naming the field, and the results API (units pages,
// NDJSON, resubmit) answers as documented.
import test from 'ava'
import { Validator } from '@seriousme/openapi-schema-validator'
import { primes } from '../jobs/index.js'
import { parseParams } from '../coordinator/schema/index.js'
import { startCluster, waitForJob, waitUntil } from './helpers/cluster.js'
import { useServices } from './helpers/services.js'

const services = useServices(test)
const JSON_TYPE = { 'content-type': 'application/json' }

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers })
  return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() }
}

test('api-schema - /openapi.json validates and documents every route of the router', async (t) => {
  const cluster = await startCluster({ services: services() })
  try {
    const c = cluster.coordinators[0]!
    const r = await get(`${c.url}/openapi.json`)
    t.is(r.status, 200)
    const doc = JSON.parse(r.text) as { openapi: string; paths: Record<string, Record<string, unknown>> }
    t.is(doc.openapi, '3.1.0')
    const result = await new Validator().validate(doc)
    t.true(result.valid, JSON.stringify(result.errors, null, 1)?.slice(0, 2000))
    t.true(c.routes.length >= 20)
    for (const route of c.routes)
      t.truthy(doc.paths[route.path]?.[route.method.toLowerCase()], `${route.method} ${route.path}`)
    const page = await fetch(`${c.url}/docs/api`)
    t.regex(page.headers.get('content-security-policy') ?? '', /default-src 'none'; script-src 'self'/)
    t.regex(await page.text(), /src="\/docs\/api\/app\.js"/)
    t.is((await get(`${c.url}/docs/api/app.js`)).status, 200)
  } finally {
    await cluster.stop()
  }
})

test('api-schema - a refused field is problem+json naming it', async (t) => {
  const cluster = await startCluster({ services: services() })
  try {
    const url = cluster.coordinators[0]!.url
    const cases: [body: unknown, field: string][] = [
      [{ type: 'primes', params: { to: 'ten' } }, 'params.to'],
      [{ type: 'primes', params: { to: 10 }, redundancy: { quorum: 0 } }, 'redundancy.quorum'],
      [{ type: 'primes', params: { to: 10 }, plan: { unitSeconds: 1e6 } }, 'plan.unitSeconds'],
      [
        { type: 'wasm', params: { module: 'a'.repeat(64), input: { blob: 'b'.repeat(64), split: 'words' } } },
        'params.input.split',
      ],
    ]
    for (const [body, field] of cases) {
      const res = await fetch(`${url}/v1/jobs`, {
        method: 'POST',
        headers: JSON_TYPE,
        body: JSON.stringify(body),
      })
      t.is(res.status, 422)
      t.regex(res.headers.get('content-type') ?? '', /^application\/problem\+json/)
      const p = (await res.json()) as Record<string, unknown>
      t.like(p, { status: 422, field, type: 'urn:cohort:problem:invalid-request' })
      t.regex(String(p['detail']), new RegExp(`^${field.replace(/[.[\]]/g, '\\$&')}: `))
    }
  } finally {
    await cluster.stop()
  }
})

test('api-schema - units pages, NDJSON result and resubmit of a failed job', async (t) => {
  const cluster = await startCluster({ services: services() })
  try {
    const c = cluster.coordinators[0]!
    const submit = async (params: Record<string, unknown>) => {
      const res = await fetch(`${c.url}/v1/jobs`, {
        method: 'POST',
        headers: JSON_TYPE,
        body: JSON.stringify({ type: 'primes', params, redundancy: { quorum: 1 } }),
      })
      t.is(res.status, 201)
      return (await res.json()) as { id: string }
    }
    // No worker yet: every unit is pending.
    const job = await submit({ to: 1_000_000, unitSize: 10_000 })
    await waitUntil('the job planned', async () => (await c.store.getJob(job.id))?.planned === true)
    t.is((await c.store.getJob(job.id))?.unitsTotal, 100)
    const pending: number[] = []
    let cursor: string | undefined
    do {
      const r = await get(
        `${c.url}/v1/jobs/${job.id}/units?limit=30${cursor === undefined ? '' : `&cursor=${cursor}`}`,
      )
      const page = JSON.parse(r.text) as { units: { index: number; state: string }[]; nextCursor?: string }
      t.true(page.units.length <= 30)
      for (const u of page.units) t.is(u.state, 'pending')
      pending.push(...page.units.map((u) => u.index))
      cursor = page.nextCursor
    } while (cursor !== undefined)
    t.deepEqual(pending, [...Array(100).keys()])
    const none = JSON.parse((await get(`${c.url}/v1/jobs/${job.id}/units?state=validated`)).text) as {
      units: unknown[]
      nextCursor?: string
    }
    t.deepEqual(none, { units: [], total: 100 })
    const badLimit = await get(`${c.url}/v1/jobs/${job.id}/units?limit=5000`)
    t.is(badLimit.status, 422)
    t.is((JSON.parse(badLimit.text) as { field: string }).field, 'limit')

    // A failed job is submitted again in one call; a running one is not.
    t.is((await fetch(`${c.url}/v1/jobs/${job.id}/resubmit`, { method: 'POST' })).status, 409)
    const doomed = await submit({ to: 100_000 })
    await c.store.failJob(doomed.id, 'unit 0 failed: test', Date.now())
    const again = await fetch(`${c.url}/v1/jobs/${doomed.id}/resubmit`, { method: 'POST' })
    t.is(again.status, 201)
    const redo = (await again.json()) as { id: string; resubmittedFrom: string; params: unknown }
    t.is(redo.resubmittedFrom, doomed.id)
    t.not(redo.id, doomed.id)

    await cluster.addWorker()
    t.is((await waitForJob(cluster.api, redo.id)).state, 'completed')
    const done = await waitForJob(cluster.api, job.id)
    t.is(done.state, 'completed')

    // Validated units, paged by state, hold the outputs that sum to the result.
    let sum = 0
    let seen = 0
    cursor = undefined
    do {
      const r = await get(
        `${c.url}/v1/jobs/${job.id}/units?state=validated&limit=40${cursor === undefined ? '' : `&cursor=${cursor}`}`,
      )
      const page = JSON.parse(r.text) as {
        units: { state: string; output: { count: number } }[]
        nextCursor?: string
      }
      for (const u of page.units) {
        t.is(u.state, 'validated')
        sum += u.output.count
        seen++
      }
      cursor = page.nextCursor
    } while (cursor !== undefined)
    t.is(seen, 100)
    t.is(sum, 78_498)

    // NDJSON: the job, then one line per unit; merged, the lines give the JSON result.
    const json = JSON.parse((await get(`${c.url}/v1/jobs/${job.id}/result`)).text) as { result: unknown }
    const nd = await get(`${c.url}/v1/jobs/${job.id}/result`, { accept: 'application/x-ndjson' })
    t.regex(nd.type, /^application\/x-ndjson/)
    const lines = nd.text.split('\n')
    t.is(lines.pop(), '')
    const [head, ...units] = lines.map((l) => JSON.parse(l) as Record<string, unknown>)
    t.like(head, { id: job.id, type: 'primes', units: 100 })
    t.deepEqual(
      units.map((u) => u['unit']),
      [...Array(100).keys()],
    )
    const params = parseParams(primes, head?.['params'])
    t.deepEqual(primes.merge(params, units.map((u) => u['output']) as { count: number }[]), json.result)
  } finally {
    await cluster.stop()
  }
})
