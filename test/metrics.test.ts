// GET /metrics: Prometheus text, parsed by a text-format parser; the counts of a finished job match
// the job (units validated, results accepted, leases, credit), HTTP requests carry route templates,
// workers are counted by runtime, and refusals by a bounded set of reason codes.
import test from 'ava'
import { REJECT_CODES, rejectCode, type RejectCode } from '../coordinator/metrics/reject-codes.js'
import { startCluster, waitForJob, waitUntil } from './helpers/cluster.js'
import { scrape } from './helpers/prometheus.js'
import { useServices } from './helpers/services.js'

const services = useServices(test)

test('metrics - the counts of a finished job match the job', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const [a, b] = [await cluster.addWorker(), await cluster.addWorker()]
  const url = cluster.coordinators[0]!.url
  // Depth 2: several units (the planner would make one of this small job).
  const job = await cluster.api.submit({ type: 'nqueens', params: { n: 11, depth: 2 } })
  const done = await waitForJob(cluster.api, job.id)
  t.is(done.state, 'completed')
  const units = done.units.total
  t.true(units > 1)
  await fetch(new URL(`/v1/jobs/no-such-job`, url))
  await fetch(new URL('/nowhere/at/all', url))

  // Workers online are written once a second: wait for both daemons to be counted.
  await waitUntil('both daemons counted online', async () => {
    const m = await scrape(url)
    return m.value('cohort_workers_online', { runtime: 'daemon' }) === 2
  })
  const m = await scrape(url)
  t.regex(m.contentType, /^text\/plain; version=0\.0\.4/)

  t.is(m.type('cohort_units_validated_total'), 'COUNTER')
  t.is(m.value('cohort_units_validated_total'), units)
  // Every result stored for the job's units was accepted once. (Not units × 2 + extra replicas: an
  // extra replica may replace a lease lost in transit, which never had a result.)
  const store = cluster.coordinators[0]!.store
  let stored = 0
  for (let i = 0; i < units; i++) stored += (await store.unitResults(`${job.id}:${i}`)).length
  t.true(stored >= units * 2)
  t.is(m.value('cohort_results_accepted_total'), stored)
  t.true(m.value('cohort_units_leased_total')! >= units * 2)
  t.is(m.value('cohort_units_failed_total'), 0)
  t.is(m.value('cohort_units_reissued_total'), 0)
  t.is(m.value('cohort_jobs', { state: 'completed' }), 1)
  t.is(m.value('cohort_jobs', { state: 'running' }), 0)
  t.is(m.value('cohort_workers_online', { runtime: 'browser' }), 0)
  t.is(m.value('cohort_workers_online', { runtime: 'unknown' }), 0)

  // Refusals: every code present, none counted.
  t.deepEqual(
    m
      .samples('cohort_results_rejected_total')
      .map((s) => s.labels?.['reason'])
      .sort(),
    [...REJECT_CODES].sort(),
  )
  t.true(m.samples('cohort_results_rejected_total').every((s) => Number(s.value) === 0))

  // Histograms: a grant for every work request answered; a settle for every result message.
  t.is(m.type('cohort_lease_latency_seconds'), 'HISTOGRAM')
  t.true(m.count('cohort_lease_latency_seconds')! >= 2)
  t.true(m.count('cohort_validation_seconds')! >= 1)

  // Credit: what the two workers were credited, in seconds.
  const stats = await Promise.all(
    [a, b].map((w) => cluster.coordinators[0]!.store.workerStats(w.identity.id)),
  )
  const creditMs = stats.reduce((n, s) => n + s.creditMs, 0)
  t.true(creditMs > 0)
  t.is(m.value('cohort_credit_issued_seconds'), creditMs / 1000)

  // HTTP: route templates, never raw paths.
  t.is(m.value('cohort_http_requests_total', { method: 'POST', route: '/v1/jobs', status: '201' }), 1)
  t.true(m.value('cohort_http_requests_total', { method: 'GET', route: '/v1/jobs/:id', status: '200' })! >= 1)
  t.is(m.value('cohort_http_requests_total', { method: 'GET', route: '/v1/jobs/:id', status: '404' }), 1)
  t.is(m.value('cohort_http_requests_total', { method: 'GET', route: 'unmatched', status: '404' }), 1)
  t.true(m.value('cohort_http_requests_total', { method: 'GET', route: '/metrics', status: '200' })! >= 1)
  const routes = new Set(m.samples('cohort_http_requests_total').map((s) => s.labels?.['route']))
  t.false(
    [...routes].some((r) => r?.includes(job.id) || r?.includes('no-such-job') || r?.includes('nowhere')),
  )

  // Process metrics (prom-client's defaults).
  t.true(m.value('process_cpu_seconds_total')! > 0)
  t.true(m.value('nodejs_heap_size_used_bytes')! > 0)
  // The counters of /v1/stats are the same numbers.
  const { counters } = (await (await fetch(new URL('/v1/stats', url))).json()) as {
    counters: Record<string, number>
  }
  t.is(counters['unitsValidated'], units)
  t.is(m.value('cohort_leases_expired_total'), counters['leasesExpired'])
})

test('metrics - each coordinator serves its own counts', async (t) => {
  const cluster = await startCluster({ services: services(), coordinators: 2 })
  t.teardown(() => cluster.stop())
  await cluster.addWorker()
  await cluster.addWorker()
  const job = await cluster.api.submit({ type: 'nqueens', params: { n: 11, depth: 2 } })
  const done = await waitForJob(cluster.api, job.id)
  const [m1, m2] = await Promise.all(cluster.coordinators.map((c) => scrape(c.url)))
  t.is(
    m1!.value('cohort_results_accepted_total')! + m2!.value('cohort_results_accepted_total')!,
    done.units.total * 2 + done.extraReplicas,
  )
  t.is(
    m1!.value('cohort_units_validated_total')! + m2!.value('cohort_units_validated_total')!,
    done.units.total,
  )
  // Jobs by state are the cluster's, read from Redis: both say the same.
  t.is(m1!.value('cohort_jobs', { state: 'completed' }), 1)
  t.is(m2!.value('cohort_jobs', { state: 'completed' }), 1)
})

test('metrics - refusal reasons map to a fixed set of codes', (t) => {
  const cases: [string, RejectCode][] = [
    ['unknown job', 'unknown-job'],
    ['digest does not match the output', 'bad-digest'],
    ['replica, unit and job ids do not belong together', 'mismatched-ids'],
    ['replica does not belong to that unit', 'mismatched-ids'],
    ['malformed output: count must be an integer', 'malformed-output'],
    ['this identity is banned: its result for unit j:1 disagreed', 'banned'],
    ['unknown replica', 'unknown-replica'],
    ['replica was not leased to this worker', 'not-leased'],
    ['lease is no longer held (expired)', 'lease-ended'],
    ['job is cancelled', 'job-ended'],
    ['something new', 'other'],
  ]
  for (const [reason, code] of cases) t.is(rejectCode(reason), code, reason)
  // Every code but the fallback is reached by some reason.
  t.deepEqual(new Set(cases.map(([, c]) => c)), new Set(REJECT_CODES))
})
