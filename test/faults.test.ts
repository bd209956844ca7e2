// Faults: killed workers and coordinators delay a job but never lose or double-count a result.
import test from 'ava'
import { Queue, QueueEvents } from 'bullmq'
import { Redis } from 'ioredis'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect } from '../client/index.js'
import { spawnCohort, startCluster, waitForJob, waitUntil } from './helpers/cluster.js'
import { gate } from './helpers/runners.js'
import { useServices } from './helpers/services.js'

const services = useServices(test)

test('faults - kill -9 of a worker mid-unit: its leases expire, are reissued, and the job completes', async (t) => {
  const cluster = await startCluster({ services: services(), tuning: { leaseMs: 1_500 } })
  const dir = await mkdtemp(join(tmpdir(), 'cohort-faults-'))
  t.teardown(async () => {
    await cluster.stop()
    await rm(dir, { recursive: true, force: true })
  })
  const victim = spawnCohort(cluster.workerArgs(join(dir, 'victim.json'), '--threads', '1'))
  t.teardown(() => victim.kill())
  await victim.waitForLine(/worker started/)
  const job = await cluster.api.submit({ type: 'primes', params: { to: 100_000_000, unitSize: 2_000_000 } })
  const store = cluster.coordinators[0]!.store
  // Stop the victim as a unit starts, and keep it stopped until the coordinator has settled the last unit
  // it started: if that result got out first (a fast machine), let the victim go on and try again; once a
  // lease expired while the victim held it, kill it. So it dies mid-unit whatever the machine's speed.
  const startedLines = (): string[] => victim.lines.filter((l) => /unit started/.test(l))
  let victimUnit = ''
  for (let from = 0; victimUnit === ''; from = victim.lines.length) {
    await victim.waitForLine(/unit started/, 30_000, from)
    victim.child.kill('SIGSTOP')
    const { replicaId } = JSON.parse(startedLines().at(-1) ?? '{}') as { replicaId: string }
    let state = ''
    await waitUntil('the unit settled', async () => {
      state = String((await store.replicaState(replicaId))['state'])
      return state !== 'leased'
    })
    if (state === 'expired') victimUnit = replicaId
    else victim.child.kill('SIGCONT')
  }
  await victim.kill('SIGKILL')

  await cluster.addWorker()
  await cluster.addWorker()
  const done = await waitForJob(cluster.api, job.id)
  t.is(done.state, 'completed')
  t.like((await cluster.api.result(job.id)).result, { count: 5_761_455 })
  t.is((await store.replicaState(victimUnit))['state'], 'expired', "the killed worker's lease expired")
  t.true(cluster.coordinators[0]!.counters.leasesExpired > 0)
  t.is(done.units.validated, done.units.total)
})

test('faults - kill -9 of the coordinator mid-job, then a new coordinator: the job completes, nothing counted twice', async (t) => {
  const cluster = await startCluster({ services: services(), coordinators: 0, tuning: { leaseMs: 2_000 } })
  const dir = await mkdtemp(join(tmpdir(), 'cohort-faults-'))
  t.teardown(async () => {
    await cluster.stop()
    await rm(dir, { recursive: true, force: true })
  })
  const keyFile = await cluster.writeCoordinatorKey(dir)
  const first = spawnCohort(
    // Jobs are submitted anonymously, as on every test cluster.
    cluster.coordinatorArgs(keyFile, '--lease-ms', '2000', '--anonymous'),
    cluster.coordinatorEnv,
  )
  t.teardown(() => first.kill())
  const line = await first.waitForLine(/coordinator listening on/)
  const url = /listening on (\S+);/.exec(line)?.[1] ?? ''
  const api = connect({ url: url })
  // Each worker runs five units, then waits at the gate: the job is part-way when the coordinator dies,
  // however fast the machine.
  const held = gate(5)
  // They sign up with the coordinator that runs now, and keep their credentials when it dies.
  await cluster.addWorker({ wrap: held.wrap, coordinatorUrl: url })
  await cluster.addWorker({ wrap: held.wrap, coordinatorUrl: url })
  const job = await api.submit({ type: 'primes', params: { to: 40_000_000, unitSize: 1_000_000 } })
  await waitUntil('both workers at the gate', () => held.waiting === 2)
  t.is((await api.job(job.id)).state, 'running')
  await first.kill('SIGKILL')
  held.open()

  const second = await cluster.addCoordinator()
  const done = await waitForJob(connect({ url: second.url }), job.id)
  t.is(done.state, 'completed')
  t.like((await cluster.api.result(job.id)).result, { count: 2_433_654 })
  t.is(done.units.validated, done.units.total, 'every unit validated exactly once')
  const store = second.store
  const credited = (await Promise.all(cluster.workers.map((w) => store.workerStats(w.identity.id)))).reduce(
    (n, s) => n + s.valid,
    0,
  )
  // Each validated unit credits exactly its agreeing replicas: never more than two per unit here.
  t.is(credited, done.units.total * 2, `credited ${credited} replicas for ${done.units.total} units`)
})

test('faults - two coordinators against the same Redis and NATS complete one job together', async (t) => {
  const cluster = await startCluster({ services: services(), coordinators: 2 })
  t.teardown(() => cluster.stop())
  await cluster.addWorker()
  await cluster.addWorker()
  // Depth 2 (the planner would make one unit of this small job): units enough for both coordinators.
  const job = await cluster.api.submit({ type: 'nqueens', params: { n: 11, depth: 2 } })
  const done = await waitForJob(connect({ url: cluster.coordinators[1]!.url }), job.id)
  t.is(done.state, 'completed')
  t.like((await cluster.api.result(job.id)).result, { solutions: 2680 })
  const [c1, c2] = cluster.coordinators
  t.true(
    c1!.counters.resultsAccepted > 0 && c2!.counters.resultsAccepted > 0,
    'both coordinators validated results',
  )
  t.is(c1!.counters.resultsAccepted + c2!.counters.resultsAccepted, done.units.total * 2 + done.extraReplicas)
})

test("faults - a coordinator without the coordinators' NATS login refuses to start, naming the fix", async (t) => {
  const cluster = await startCluster({ services: services(), coordinators: 0 })
  const dir = await mkdtemp(join(tmpdir(), 'cohort-faults-'))
  t.teardown(async () => {
    await cluster.stop()
    await rm(dir, { recursive: true, force: true })
  })
  // Without `coordinatorEnv`: no NATS login.
  const deaf = spawnCohort(cluster.coordinatorArgs(await cluster.writeCoordinatorKey(dir)))
  const code = await new Promise<number | null>((resolve) => deaf.child.once('exit', (c) => resolve(c)))
  t.is(code, 2)
  t.true(deaf.lines.some((l) => /NATS refused this coordinator's login.*NATS_CREDS/.test(l)))
})

test('faults - a job whose merge step is recorded as done while the job is not (a failover between the two writes) is merged by the sweep', async (t) => {
  const cluster = await startCluster({ services: services(), tuning: { sweepIntervalMs: 500 } })
  t.teardown(() => cluster.stop())
  const held = gate(0)
  t.teardown(() => held.open())
  await cluster.addWorker({ wrap: held.wrap })
  await cluster.addWorker({ wrap: held.wrap })
  const job = await cluster.api.submit({ type: 'primes', params: { to: 2000, unitSize: 1000 } })
  // The job's merge step runs, and is recorded as done, before its units are validated: the step
  // the validator enqueues when the last unit is validated is then a duplicate, dropped, as a step
  // recorded before a failover lost the job's completion would be.
  const connection = new Redis(services().redisUrl, { maxRetriesPerRequest: null })
  t.teardown(() => connection.disconnect())
  const opts = { connection, prefix: `${cluster.redisPrefix}bull` }
  const queue = new Queue('assimilate', opts)
  const events = new QueueEvents('assimilate', opts)
  t.teardown(async () => {
    await events.close()
    await queue.close()
  })
  await events.waitUntilReady()
  const step = await queue.add('assimilate', { jobId: job.id }, { jobId: `assimilate-${job.id}` })
  await step.waitUntilFinished(events, 30_000)
  t.is(await step.getState(), 'completed')
  held.open()
  const done = await waitForJob(cluster.api, job.id)
  t.is(done.state, 'completed')
  t.like((await cluster.api.result(job.id)).result, { count: 303 })
  t.is(cluster.coordinators[0]!.counters.jobsCompleted, 1)
})
