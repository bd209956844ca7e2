// Restarts of the servers themselves: NATS and Redis (with AOF) going away mid-job delay the job,
// and the worker daemons and coordinator reconnect on their own. Serial: each test restarts a server.
import test, { type ExecutionContext } from 'ava'
import { startCluster, waitForJob, waitUntil } from './helpers/cluster.js'
import { gate } from './helpers/runners.js'
import { useServices } from './helpers/services.js'

const services = useServices(test)

/**
 * π(4·10^7) over 40 units, on two workers that each ran four units and wait at a gate: the job is
 * part-way, however fast the machine, until `go()` lets them on.
 */
async function jobUnderWay(t: ExecutionContext) {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const held = gate(4)
  await cluster.addWorker({ wrap: held.wrap })
  await cluster.addWorker({ wrap: held.wrap })
  const job = await cluster.api.submit({ type: 'primes', params: { to: 40_000_000, unitSize: 1_000_000 } })
  await waitUntil('both workers at the gate', () => held.waiting === 2)
  t.is((await cluster.api.job(job.id)).state, 'running')
  return { cluster, job, go: () => held.open() }
}

test.serial(
  'restarts - a NATS restart mid-job: workers and coordinator reconnect and the job completes',
  async (t) => {
    const { cluster, job, go } = await jobUnderWay(t)
    await services().restartNats!()
    go()
    const done = await waitForJob(cluster.api, job.id)
    t.is(done.state, 'completed')
    t.like((await cluster.api.result(job.id)).result, { count: 2_433_654 })
    t.true(cluster.workers.every((w) => !w.nats.isClosed()))
  },
)

test.serial(
  'restarts - kill -9 of Redis (AOF) mid-job: nothing accepted is lost and the job completes',
  async (t) => {
    const { cluster, job, go } = await jobUnderWay(t)
    // Redis appends to the AOF before it answers, so a killed process (not a lost machine) keeps every
    // acknowledged write: no validated unit may be missing after the restart.
    const before = (await cluster.api.job(job.id)).units.validated
    await services().killRedis!('SIGKILL')
    await services().restartRedis!()
    go()
    const after = await cluster.api.job(job.id)
    t.true(
      after.units.validated >= before,
      `validated ${after.units.validated} after the restart, ${before} before`,
    )
    const done = await waitForJob(cluster.api, job.id)
    t.is(done.state, 'completed')
    t.like((await cluster.api.result(job.id)).result, { count: 2_433_654 })
    t.is(done.units.validated, done.units.total)
  },
)
