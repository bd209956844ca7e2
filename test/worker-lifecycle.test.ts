// Worker lifecycle: identity on disk, graceful stop hands units back at once, SIGTERM of the process.
import test from 'ava'
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError } from '../shared/index.js'
import { loadOrCreateIdentity } from '../worker/index.js'
import { replicaStates, spawnCohort, startCluster, waitForJob, waitUntil } from './helpers/cluster.js'
import { hanging } from './helpers/runners.js'
import { useServices } from './helpers/services.js'

const services = useServices(test)

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cohort-worker-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

test('identity - the key file is created readable by its owner only and gives the same identity again', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'nested', 'key.json')
  const first = await loadOrCreateIdentity(path)
  t.true(first.created)
  t.is((await stat(path)).mode & 0o777, 0o600)
  const again = await loadOrCreateIdentity(path)
  t.false(again.created)
  t.is(again.identity.id, first.identity.id)
})

test('identity - a corrupt key file is refused with a clear error', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'key.json')
  await writeFile(path, 'not json', { mode: 0o600 })
  await t.throwsAsync(loadOrCreateIdentity(path), { instanceOf: ConfigError, message: /not valid JSON/ })
  await writeFile(path, JSON.stringify({ v: 1, alg: 'Ed25519', publicKey: 'AAAA', privateKey: 'AAAA' }))
  await t.throwsAsync(loadOrCreateIdentity(path))
})

test('lifecycle - a stopping worker hands back its units at once; another worker finishes them before any lease expires', async (t) => {
  // Leases of 10 minutes: if anything waited for expiry, this job could not finish.
  const cluster = await startCluster({ services: services(), tuning: { leaseMs: 600_000 } })
  t.teardown(() => cluster.stop())
  // Its units never end by themselves, so it still holds them when it stops, however fast the machine.
  const leaver = await cluster.addWorker({ threads: 1, bufferUnits: 8, wrap: hanging })
  const job = await cluster.api.submit({
    type: 'primes',
    params: { to: 20_000_000, unitSize: 1_000_000 },
    redundancy: { quorum: 1, maxReplicas: 1 },
  })
  await waitUntil(
    'the worker holds buffered units',
    () => leaver.daemon.stats.held > leaver.daemon.stats.running,
  )
  await leaver.daemon.stop({ drainTimeoutMs: 0 })
  await leaver.stop()
  t.true(cluster.coordinators[0]!.counters.leasesReleased > 0, 'units were handed back')
  await cluster.addWorker({ threads: 2 })
  const done = await waitForJob(cluster.api, job.id)
  t.is(done.state, 'completed')
  t.like((await cluster.api.result(job.id)).result, { count: 1_270_607 })
  t.is(cluster.coordinators[0]!.counters.leasesExpired, 0)
})

test('lifecycle - SIGTERM stops the worker process cleanly and its units go back to the queue', async (t) => {
  // Leases of 10 minutes: a replica that is not leased any more was handed back or computed.
  const cluster = await startCluster({ services: services(), tuning: { leaseMs: 600_000 } })
  const dir = await tempDir(t)
  t.teardown(() => cluster.stop())
  const keyFile = join(dir, 'w.json')
  // SIGTERM must land while the worker holds units it has not started. It is stopped (SIGSTOP) as a
  // unit starts, so that it starts no other, and sent SIGTERM while stopped, so the signal is among
  // the first things it handles when it continues: with one thread it has units buffered then unless
  // it finished them between its log line and the stop (a fast machine). The replicas show which:
  // when none was handed back, the worker is started again with the same identity on a job of units
  // twice as large, and stopped again.
  const jobs: string[] = []
  let released = 0
  for (let attempt = 1; released === 0; attempt++) {
    const unitSize = 1_000_000 * 2 ** (attempt - 1)
    const job = await cluster.api.submit({
      type: 'primes',
      params: { to: 20 * unitSize, unitSize },
      redundancy: { quorum: 1, maxReplicas: 1 },
    })
    jobs.push(job.id)
    const child = spawnCohort(cluster.workerArgs(keyFile, '--threads', '1', '--buffer', '4'))
    t.teardown(() => child.kill())
    await child.waitForLine(/unit started/)
    child.child.kill('SIGSTOP')
    const exited = new Promise<number | null>((resolve) => child.child.once('exit', (code) => resolve(code)))
    child.child.kill('SIGTERM')
    child.child.kill('SIGCONT')
    t.is(await exited, 0, 'a clean exit')
    const { identity } = await loadOrCreateIdentity(keyFile)
    const states = await replicaStates(cluster, identity.id)
    t.false(states.includes('leased'), `every lease computed or handed back: ${states.join(', ')}`)
    released = states.filter((s) => s === 'released').length
    if (released === 0) t.log(`attempt ${attempt}: it had finished what it held; again`)
    else {
      t.true(child.lines.some((l) => /handed back leases/.test(l)))
      t.log(`attempt ${attempt} (units of ${unitSize}): ${released} units handed back`)
    }
  }
  t.true(cluster.coordinators[0]!.counters.leasesReleased >= released)
  await cluster.addWorker({ threads: 2 })
  for (const id of jobs) {
    const done = await waitForJob(cluster.api, id)
    t.is(done.state, 'completed')
    t.is(done.units.validated, done.units.total)
  }
  t.like((await cluster.api.result(jobs[0]!)).result, { count: 1_270_607 })
  t.is(cluster.coordinators[0]!.counters.leasesExpired, 0)
})

test('cli - a bad flag is refused with a message naming it and exit code 2', async (t) => {
  const child = spawnCohort(['worker', '--threads', '-3', '--nats-url', 'nats://127.0.0.1:1', '--trust', 'x'])
  const code = await new Promise<number | null>((resolve) => child.child.once('exit', (c) => resolve(c)))
  t.is(code, 2)
  t.true(child.lines.some((l) => /--threads must be an integer/.test(l)))
})

test('cli - a worker without a trusted coordinator key refuses to start', async (t) => {
  const child = spawnCohort(['worker', '--nats-url', 'nats://127.0.0.1:1'], { COHORT_TRUST: '' })
  const code = await new Promise<number | null>((resolve) => child.child.once('exit', (c) => resolve(c)))
  t.is(code, 2)
  t.true(child.lines.some((l) => /no trusted coordinator key/.test(l)))
})

test('lifecycle - a worker with room for more units than one request may carry still gets work', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const big = await cluster.addWorker({ threads: 1, bufferUnits: 100 })
  const job = await cluster.api.submit({
    type: 'primes',
    params: { to: 1_000_000, unitSize: 10_000 },
    redundancy: { quorum: 1, maxReplicas: 1 },
  })
  const done = await waitForJob(cluster.api, job.id)
  t.is(done.state, 'completed')
  t.like((await cluster.api.result(job.id)).result, { count: 78_498 })
  t.is(big.daemon.stats.resultsAccepted, 100)
  t.is(cluster.coordinators[0]!.counters.malformed, 0)
})
