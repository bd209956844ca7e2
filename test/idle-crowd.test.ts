// An idle crowd costs little: a worker that keeps getting empty grants is told to wait longer each
// time, up to a cap, and a batch of n ready replicas wakes about n volunteers, not all of them.
import test from 'ava'
import { idleCapMs, idleRetryMs } from '../coordinator/scheduler.js'
import { WORK_AVAILABLE_QUEUE } from '../shared/index.js'
import { startCluster, waitUntil } from './helpers/cluster.js'
import { PRIMES } from './helpers/protocol-fixtures.js'
import { useServices } from './helpers/services.js'
import { rawVolunteer } from './helpers/volunteer.js'

const services = useServices(test, { websocket: false })

test('idle crowd - the wait of an empty grant doubles per empty grant in a row, jittered, up to the cap', (t) => {
  const ceilings = [1, 2, 3, 4, 5, 6, 7, 8, 40].map((idle) => idleRetryMs(idle, 1000, 120_000, () => 1))
  t.deepEqual(ceilings, [1000, 2000, 4000, 8000, 16_000, 32_000, 64_000, 120_000, 120_000])
  const floors = [1, 4, 40].map((idle) => idleRetryMs(idle, 1000, 120_000, () => 0))
  t.deepEqual(floors, [500, 4000, 60_000])
})

test('idle crowd - the longest wait grows with the crowd: a few workers ask every second, a thousand every 100 s', (t) => {
  t.is(idleCapMs(2, 10, 1000, 120_000), 1000)
  t.is(idleCapMs(100, 10, 1000, 120_000), 10_000)
  t.is(idleCapMs(1000, 10, 1000, 120_000), 100_000)
  t.is(idleCapMs(100_000, 10, 1000, 120_000), 120_000)
})

test('idle crowd - an idle worker is told to wait longer after each empty grant, up to the cap; units start it afresh', async (t) => {
  const cluster = await startCluster({
    services: services(),
    // Small waits so the whole climb fits in a few requests; many requests allowed, none rate-limited.
    // The one idle worker is a crowd large enough for the cap (idleRequestsPerSecond).
    tuning: {
      idleRetryMs: 100,
      idleRetryMaxMs: 1600,
      idleRequestsPerSecond: 0.01,
      workRequestBurst: 1000,
      workRequestsPerSecond: 1000,
    },
  })
  t.teardown(() => cluster.stop())
  const v = await rawVolunteer(t, cluster)
  const waits: number[] = []
  for (let i = 0; i < 8; i++) {
    const grant = await v.client.requestWork(4, [PRIMES])
    t.is(grant.units.length, 0)
    t.is(grant.limit, undefined)
    waits.push(grant.retryAfterMs)
  }
  t.log('waits asked for by 8 empty grants in a row (ms):', waits.join(', '))
  const ceilings = [100, 200, 400, 800, 1600, 1600, 1600, 1600]
  for (const [i, wait] of waits.entries()) {
    const ceiling = ceilings[i]!
    t.true(
      wait >= ceiling / 2 && wait <= ceiling,
      `grant ${i + 1}: ${wait} ms, not in ${ceiling / 2}..${ceiling}`,
    )
  }
  t.is(cluster.coordinators[0]!.counters.emptyGrants, 8)

  // One unit at quorum 2: the first request gets a replica; the next gets nothing (the other replica is
  // of a unit it holds) and is the first empty grant in a row again.
  await cluster.api.submit({ type: 'primes', params: { to: 1000, unitSize: 1000 } })
  let granted = 0
  await waitUntil('a replica granted', async () => {
    const grant = await v.client.requestWork(4, [PRIMES])
    granted = grant.units.length
    if (granted > 0) t.is(grant.retryAfterMs, 0)
    return granted > 0
  })
  t.is(granted, 1)
  const after = await v.client.requestWork(4, [PRIMES])
  t.is(after.units.length, 0)
  t.true(after.retryAfterMs >= 50 && after.retryAfterMs <= 100, `${after.retryAfterMs} ms after a grant`)
})

test('idle crowd - n newly ready replicas wake n of 20 listening volunteers, not all of them', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const volunteers = await Promise.all(Array.from({ length: 20 }, () => rawVolunteer(t, cluster)))
  const subjects = `${cluster.subjectPrefix}.v1.work.available`
  const wokenBy = volunteers.map(() => 0)
  for (const [i, v] of volunteers.entries()) {
    v.nats.subscribe(subjects, { queue: WORK_AVAILABLE_QUEUE, callback: () => void wokenBy[i]!++ })
  }
  await Promise.all(volunteers.map((v) => v.nats.flush()))
  // 3 units at quorum 2: 6 replicas become ready.
  await cluster.api.submit({ type: 'primes', params: { to: 3000, unitSize: 1000 } })
  const counters = cluster.coordinators[0]!.counters
  const total = (): number => wokenBy.reduce((a, b) => a + b, 0)
  await waitUntil(
    'the wake-ups delivered',
    () => counters.wakeUpsSent >= 6 && total() >= counters.wakeUpsSent,
  )
  await Promise.all(volunteers.map((v) => v.nats.flush()))
  t.log('wake-ups per volunteer:', wokenBy.join(' '))
  t.is(counters.wakeUpsSent, 6)
  t.is(total(), 6)
  t.true(wokenBy.filter((n) => n > 0).length <= 6)
})
