// Worker daemon pause, resume and immediate stop: what the browser contributor's Pause button and
// its pagehide rely on, checked on the Node daemon against a real coordinator.
import test from 'ava'
import { startCluster, waitForJob, waitUntil } from './helpers/cluster.js'
import { hanging } from './helpers/runners.js'
import { useServices } from './helpers/services.js'

const services = useServices(test)

test('daemon - pause hands buffered units back at once and starts nothing until resume', async (t) => {
  // Leases of 10 minutes: nothing here may wait for one to expire.
  const cluster = await startCluster({ services: services(), tuning: { leaseMs: 600_000 } })
  t.teardown(() => cluster.stop())
  const a = await cluster.addWorker({ threads: 1, bufferUnits: 4 })
  const first = await cluster.api.submit({
    type: 'primes',
    params: { to: 200_000_000, unitSize: 10_000_000 },
    redundancy: { quorum: 1, maxReplicas: 1 },
  })
  await waitUntil('units buffered', () => a.daemon.stats.held > a.daemon.stats.running)
  await a.daemon.pause()
  t.true(a.daemon.paused)
  t.true(cluster.coordinators[0]!.counters.leasesReleased > 0, 'buffered units were handed back')
  await waitUntil('the running unit finished', () => a.daemon.stats.held === 0)
  let startedWhilePaused = 0
  a.daemon.on('started', () => void startedWhilePaused++)
  const doneAtPause = a.daemon.stats.unitsDone

  // Another worker finishes the first job while `a` stays paused.
  await cluster.addWorker({ threads: 1 })
  t.is((await waitForJob(cluster.api, first.id)).state, 'completed')
  t.is(startedWhilePaused, 0)
  t.is(a.daemon.stats.unitsDone, doneAtPause)

  // At quorum 2 with two workers, this job needs `a`: it completes only because `a` resumes.
  a.daemon.resume()
  t.false(a.daemon.paused)
  const second = await cluster.api.submit({ type: 'nqueens', params: { n: 9 } })
  const done = await waitForJob(cluster.api, second.id)
  t.is(done.state, 'completed')
  t.like((await cluster.api.result(second.id)).result, { solutions: 352 })
  t.true(a.daemon.stats.unitsDone > doneAtPause)
  t.is(cluster.coordinators[0]!.counters.leasesExpired, 0)
})

test('daemon - stop({ drainTimeoutMs: 0 }) aborts running units and hands them back at once', async (t) => {
  const cluster = await startCluster({ services: services(), tuning: { leaseMs: 600_000 } })
  t.teardown(() => cluster.stop())
  // Its own drain time is longer than the test may run: stop() returning at all shows it did not wait.
  const w = await cluster.addWorker({ threads: 2, bufferUnits: 0, wrap: hanging, drainTimeoutMs: 600_000 })
  await cluster.api.submit({
    type: 'primes',
    params: { to: 1_000_000, unitSize: 100_000 },
    redundancy: { quorum: 1, maxReplicas: 1 },
  })
  await waitUntil('two units running', () => w.daemon.stats.running === 2)
  await w.daemon.stop({ drainTimeoutMs: 0 })
  t.is(cluster.coordinators[0]!.counters.leasesReleased, 2)
  t.is(w.daemon.stats.held, 0)
})
