// An idle crowd costs little: a worker that keeps getting empty grants is told to wait longer each
// time, up to a cap, and a batch of n ready replicas wakes about n volunteers, not all of them.
import test from 'ava'
import { idleCapMs, idleRetryMs } from '../coordinator/scheduler.js'
import { rewakePolicy, STUCK_EVERY_TICKS, wakesFor } from '../coordinator/wake-policy.js'
import { WORK_AVAILABLE_QUEUE } from '../shared/index.js'
import { startCluster, waitUntil } from './helpers/cluster.js'
import { PRIMES } from './helpers/protocol-fixtures.js'
import { useServices } from './helpers/services.js'
import { rawVolunteer } from './helpers/volunteer.js'

const services = useServices(test, { websocket: false })

test('idle crowd - the wait of an empty grant doubles per empty grant in a row, jittered, up to the cap', (t) => {
  const ceilings = [1, 2, 3, 4, 5, 6, 40].map((idle) => idleRetryMs(idle, 1000, 16_000, () => 1))
  t.deepEqual(ceilings, [1000, 2000, 4000, 8000, 16_000, 16_000, 16_000])
  const floors = [1, 4, 40].map((idle) => idleRetryMs(idle, 1000, 16_000, () => 0))
  t.deepEqual(floors, [500, 4000, 8000])
})

test('idle crowd - a crowd whose cap is minutes long starts its climb at a sixteenth of the cap', (t) => {
  // 1,000 workers at 10 requests a second: a 100 s cap, a first wait of 6.25 s, not 1 s.
  const ceilings = [1, 2, 3, 4, 5, 6].map((idle) => idleRetryMs(idle, 1000, 100_000, () => 1))
  t.deepEqual(ceilings, [6250, 12_500, 25_000, 50_000, 100_000, 100_000])
  // A small crowd's cap is near the first wait: unchanged.
  t.is(
    idleRetryMs(1, 1000, 10_000, () => 1),
    1000,
  )
})

test("idle crowd - wake-ups: one per grant's worth of ready replicas", (t) => {
  t.is(wakesFor(0, 1, 1000), 0)
  t.is(wakesFor(6, 1, 1000), 6)
  t.is(wakesFor(800, 8, 1000), 100)
  t.is(wakesFor(801, 8, 1000), 101)
  t.is(wakesFor(5000, 1, 1000), 1000, 'at most wakeMax')
  t.is(wakesFor(10, 0.2, 1000), 10, 'never more than one per replica')
})

test('idle crowd - replicas still ready are woken for again, half as often each tick while none is taken', (t) => {
  const policy = rewakePolicy()
  const stuck = Array.from({ length: 2 * STUCK_EVERY_TICKS + 1 }, () => policy.next(6, 1, 1000))
  // 6, then 3, 1 and nothing, and one wake-up every STUCK_EVERY_TICKS ticks from then on.
  t.deepEqual(stuck.slice(0, 4), [6, 3, 1, 0])
  t.is(
    stuck.reduce((a, b) => a + b, 0),
    6 + 3 + 1 + 2,
  )
  // Taken at last: the count falls, and the wake-ups for what remains come at once.
  t.is(policy.next(4, 1, 1000), 0)
  t.is(policy.next(2, 1, 1000), 2)
  t.is(policy.next(0, 1, 1000), 0)
  t.is(policy.next(10, 2, 1000), 5)
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

test("idle crowd - newly ready replicas wake one of 20 listening volunteers per grant's worth (the lease cap of a new identity), not all of them", async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const volunteers = await Promise.all(Array.from({ length: 20 }, () => rawVolunteer(t, cluster)))
  const subjects = `${cluster.subjectPrefix}.v1.work.available`
  const wokenBy = volunteers.map(() => 0)
  for (const [i, v] of volunteers.entries()) {
    v.nats.subscribe(subjects, { queue: WORK_AVAILABLE_QUEUE, callback: () => void wokenBy[i]!++ })
  }
  await Promise.all(volunteers.map((v) => v.nats.flush()))
  // 12 units at quorum 2: 24 replicas become ready, 4 per grant to a new identity (leaseCapBase).
  await cluster.api.submit({ type: 'primes', params: { to: 12_000, unitSize: 1000 } })
  const counters = cluster.coordinators[0]!.counters
  const total = (): number => wokenBy.reduce((a, b) => a + b, 0)
  await waitUntil(
    'the wake-ups delivered',
    () => counters.wakeUpsSent >= 6 && total() >= counters.wakeUpsSent + counters.rewakesSent,
  )
  await Promise.all(volunteers.map((v) => v.nats.flush()))
  t.log('wake-ups per volunteer:', wokenBy.join(' '), `(${counters.rewakesSent} sent again)`)
  t.is(counters.wakeUpsSent, 6)
  // Nobody asked, so the replicas stay ready and may have been woken for again: still not everyone.
  t.is(total(), 6 + counters.rewakesSent)
  t.true(wokenBy.filter((n) => n > 0).length <= total())
})

test('idle crowd - a replica whose wake-up nobody heard is woken for again', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  // The replicas become ready while no volunteer listens: their wake-ups are lost.
  await cluster.api.submit({ type: 'primes', params: { to: 1000, unitSize: 1000 } })
  const counters = cluster.coordinators[0]!.counters
  await waitUntil('the first wake-ups sent', () => counters.wakeUpsSent >= 1)
  const v = await rawVolunteer(t, cluster)
  const woken = new Promise<void>((resolve) => {
    v.nats.subscribe(`${cluster.subjectPrefix}.v1.work.available`, {
      queue: WORK_AVAILABLE_QUEUE,
      max: 1,
      callback: () => resolve(),
    })
  })
  await woken
  t.true(counters.rewakesSent >= 1)
  const grant = await v.client.requestWork(4, [PRIMES])
  t.is(grant.units.length, 1, 'the woken volunteer finds a replica')
})
