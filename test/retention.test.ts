// Retention: a finished job's per-unit data expires after a while, the job and its result later.
import test from 'ava'
import { Redis } from 'ioredis'
import { ApiError } from '../client/index.js'
import { startCluster, waitForJob, waitUntil } from './helpers/cluster.js'
import { useServices } from './helpers/services.js'

const services = useServices(test)

test('retention - units, replicas and results of a finished job expire, then the job itself', async (t) => {
  const cluster = await startCluster({
    services: services(),
    tuning: { unitRetentionMs: 1_500, jobRetentionMs: 4_000, sweepIntervalMs: 200 },
  })
  t.teardown(() => cluster.stop())
  const redis = new Redis(services().redisUrl)
  t.teardown(() => redis.disconnect())
  await cluster.addWorker()
  await cluster.addWorker()
  const job = await cluster.api.submit({ type: 'primes', params: { to: 100_000, unitSize: 10_000 } })
  const done = await waitForJob(cluster.api, job.id)
  t.is(done.state, 'completed')
  // Cohort's own keys of this job (BullMQ keeps its step records for an hour on its own).
  const keys = async (): Promise<string[]> =>
    (await redis.keys(`${cluster.redisPrefix}*${job.id}*`)).filter(
      (k) => !k.startsWith(`${cluster.redisPrefix}bull:`),
    )
  t.true((await keys()).length > done.units.total, 'unit and replica data exists right after completion')

  await waitUntil(
    'per-unit data expired',
    // The job and its event log are kept for the job's retention.
    async () =>
      (await keys()).every(
        (k) =>
          k === `${cluster.redisPrefix}job:${job.id}` || k === `${cluster.redisPrefix}job:${job.id}:events`,
      ),
    20_000,
  )
  t.like((await cluster.api.result(job.id)).result, { count: 9592 }, 'the result outlives the unit data')

  await waitUntil('the job expired', async () => (await keys()).length === 0, 20_000)
  const gone = await cluster.api.job(job.id).catch((e: unknown) => e)
  t.true(gone instanceof ApiError && gone.status === 404)
})

test('retention - a cancelled job has its data expire too', async (t) => {
  const cluster = await startCluster({
    services: services(),
    tuning: { unitRetentionMs: 1_000, jobRetentionMs: 60_000, sweepIntervalMs: 200 },
  })
  t.teardown(() => cluster.stop())
  const redis = new Redis(services().redisUrl)
  t.teardown(() => redis.disconnect())
  const job = await cluster.api.submit({ type: 'primes', params: { to: 100_000, unitSize: 10_000 } })
  await waitUntil('planned', async () => (await cluster.api.job(job.id)).units.planned)
  await cluster.api.cancel(job.id)
  await waitUntil(
    'unit data expired',
    async () => (await redis.keys(`${cluster.redisPrefix}unit:${job.id}*`)).length === 0,
    20_000,
  )
  t.is((await cluster.api.job(job.id)).state, 'cancelled')
})
