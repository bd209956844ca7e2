// Planner against a real cluster: the speeds workers report with validated results change the next
// job's plan, and the plan is shown with the job.
import test from 'ava'
import { Redis } from 'ioredis'
import { choosePlan } from '../coordinator/planner/choose-plan.js'
import { createSpeedStore } from '../coordinator/store/speed-store.js'
import { DEFAULT_TUNING } from '../coordinator/options.js'
import { primes } from '../jobs/index.js'
import { startCluster, testLogger, waitForJob } from './helpers/cluster.js'
import { useServices } from './helpers/services.js'
import { parseParams } from '../coordinator/schema/index.js'

const services = useServices(test)

/** 10^11 numbers at a 0.3 s target: 1,000 units while no worker has reported its speed. */
const PROBE = { type: 'primes', params: { to: 1e11 }, plan: { unitSeconds: 0.3 } }

test('planner - after workers report their speeds, the next job is planned with them', async (t) => {
  const cluster = await startCluster({ services: services(), tuning: { plannerThreads: 1 } })
  t.teardown(() => cluster.stop())

  const before = await cluster.api.submit(PROBE)
  t.deepEqual(before.view.plan, { units: 1000, unitSeconds: 0.3, by: 'target', speedFactor: 1, threads: 1 })
  await cluster.api.cancel(before.id)

  // Ten units of 30 ms estimated each: large enough to be timed.
  await cluster.addWorker()
  await cluster.addWorker()
  const run = await cluster.api.submit({ type: 'primes', params: { to: 1e8, unitSize: 1e7 } })
  t.like(run.view.plan, { units: 10, by: 'explicit' })
  t.is((await waitForJob(cluster.api, run.id)).state, 'completed')

  const redis = new Redis(services().redisUrl)
  t.teardown(() => redis.disconnect())
  const store = createSpeedStore({ redis, prefix: cluster.redisPrefix, log: testLogger('speeds').log })
  const known = await store.speeds('primes@1', Date.now())
  t.is(known.workersOnline, 2)
  const factor = known.speedFactor
  if (factor === undefined) return t.fail('no speed recorded')
  t.true(factor >= 1 / 16 && factor <= 16)

  const after = await cluster.api.submit(PROBE)
  await cluster.api.cancel(after.id)
  const expected = choosePlan(
    primes,
    parseParams(primes, PROBE.params),
    false,
    { unitSeconds: 0.3, minUnitSeconds: 0.05, unitsPerThread: DEFAULT_TUNING.plannerUnitsPerThread },
    { speedFactor: factor, threads: 8, quorum: 2 },
  )
  // Two workers online count as 2 × 4 threads.
  t.like(after.view.plan, { by: 'target', threads: 8, speedFactor: expected.view.speedFactor })
  t.is(after.view.plan?.units, expected.cost.units)
  t.not(after.view.plan?.units, 1000, `a measured factor of ${factor} changes the unit count`)
  t.like(after.view.params, { unitSize: Math.ceil(1e11 / expected.cost.units) })
})

test('planner - a job too small for the target is spread over the threads, and the choice is shown', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  await cluster.addWorker()
  await cluster.addWorker()
  const job = await cluster.api.submit({ type: 'primes', params: { to: 1e9 } })
  // 3 s of work, 8 threads at quorum 2: 12 units of 0.25 s.
  t.deepEqual(job.view.plan, { units: 12, unitSeconds: 0.25, by: 'spread', speedFactor: 1, threads: 8 })
  t.like(job.view.params, { unitSize: 83_333_334 })
  const done = await waitForJob(cluster.api, job.id)
  t.is(done.state, 'completed')
  t.is(done.units.total, 12)
  t.like((await cluster.api.result(job.id)).result, { count: 50_847_534 })
})
