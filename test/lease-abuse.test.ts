// Lease accounting against volunteers who take work and do not do it: hoarders that take all they
// can and only renew, an identity that takes and hands back in a loop, renewals past a replica's
// lifetime, bursts of work requests, and workers that claim more compute time than they spent.
// Each attacker speaks the protocol itself on a volunteer connection of its own.
import test from 'ava'
import { builtinJobTypes } from '../jobs/index.js'
import type { UnitPayload } from '../shared/index.js'
import { startCluster, waitForJob, waitUntil, type Cluster } from './helpers/cluster.js'
import { computeOutput, openUnits, PRIMES } from './helpers/protocol-fixtures.js'
import { useServices } from './helpers/services.js'
import { rawVolunteer, type RawVolunteer } from './helpers/volunteer.js'
import { parseParams } from '../coordinator/schema/index.js'

const services = useServices(test)

type Volunteer = RawVolunteer

const volunteer = (t: { teardown(f: () => unknown): void }, cluster: Cluster): Promise<Volunteer> =>
  rawVolunteer(t, cluster, { name: 'attacker', timeoutMs: 10_000 })

/** The job type's estimate of one unit of a primes job, in whole ms: the documented credit per result. */
function estimateMs(params: unknown): number {
  const primes = builtinJobTypes.get(PRIMES)!
  return Math.ceil(primes.estimateCost(parseParams(primes, params)).unitSeconds * 1000)
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/**
 * A hoarder: asks for as many units as a request may carry, never computes, renews all it holds.
 * Runs until `stop()`; `maxHeld` is the most leases it held at once.
 */
function hoard(v: Volunteer) {
  const held = new Set<string>()
  let stopped = false
  const state = { maxHeld: 0, granted: 0 }
  const loop = (async () => {
    while (!stopped) {
      const grant = await v.client.requestWork(64, [PRIMES]).catch(() => undefined)
      for (const u of grant === undefined ? [] : await openUnits(grant)) {
        held.add(u.replicaId)
        state.granted++
      }
      if (held.size > 0) {
        const renewed = await v.client.renew([...held]).catch(() => undefined)
        for (const rid of renewed?.lost ?? []) held.delete(rid)
        // Counted once the coordinator has said which it still holds: on a loaded machine leases can
        // expire between two renewals, and the next grant replaces them before a renewal reports them
        // lost. A cap that let more through would show here as more leases renewed at once.
        if (renewed !== undefined) state.maxHeld = Math.max(state.maxHeld, held.size)
      }
      await pause(100)
    }
  })()
  return {
    state,
    held,
    async stop() {
      stopped = true
      await loop
    },
  }
}

test('lease abuse - two identities that take all they may and only renew cannot stop a job; each holds at most its cap', async (t) => {
  // The attackers are strangers; only the honest workers are the operator's own hosts.
  const cluster = await startCluster({
    services: services(),
    tuning: { leaseMs: 1_500, leaseLifetimeFloorMs: 2_000, leaseLifetimeFactor: 1, leaseCapBase: 4 },
    vouch: false,
  })
  t.teardown(() => cluster.stop())
  const job = await cluster.api.submit({
    type: 'primes',
    params: { to: 4_000_000, unitSize: 200_000 },
    redundancy: { quorum: 2 },
  })
  const hoarders = [hoard(await volunteer(t, cluster)), hoard(await volunteer(t, cluster))]
  t.teardown(() => Promise.all(hoarders.map((h) => h.stop())))
  await waitUntil('both hoarders hold their cap', () => hoarders.every((h) => h.held.size >= 4))
  await cluster.addWorker({ vouch: true })
  await cluster.addWorker({ vouch: true })
  const done = await waitForJob(cluster.api, job.id, 120_000)
  t.is(done.state, 'completed')
  t.like((await cluster.api.result(job.id)).result, { count: 283_146 })
  for (const h of hoarders) t.true(h.state.maxHeld <= 4, `a hoarder held ${h.state.maxHeld} leases at once`)
  const c = cluster.coordinators[0]!.counters
  t.true(c.leaseCapReached > 0, 'hoarders were held to their cap')
  t.true(c.renewalsRefused + c.leasesExpired >= 8, 'hoarded replicas were taken back and reissued')
})

test('lease abuse - one identity that takes leases and hands them back in a loop does not fail the job and never gets a unit back', async (t) => {
  // No grace for units let go (see the next test): however long a unit waits, the identity that gave
  // it back never gets it again.
  const cluster = await startCluster({
    services: services(),
    tuning: { letGoGraceMs: 3_600_000 },
    vouch: false,
  })
  t.teardown(() => cluster.stop())
  const job = await cluster.api.submit({
    type: 'primes',
    params: { to: 2_000_000, unitSize: 100_000 },
    redundancy: { quorum: 2 },
  })
  const v = await volunteer(t, cluster)
  const seen = new Map<string, number>()
  let rounds = 0
  const attack = (async () => {
    for (;;) {
      const state = (await cluster.api.job(job.id)).state
      if (state !== 'running' && state !== 'queued') return
      const grant = await v.client.requestWork(64, [PRIMES])
      const got = await openUnits(grant)
      for (const u of got) seen.set(u.unitId, (seen.get(u.unitId) ?? 0) + 1)
      if (got.length > 0) {
        await v.client.release(
          got.map((u) => u.replicaId),
          'taking and giving back',
        )
        rounds++
      } else await pause(grant.retryAfterMs)
      // Honest workers join once the attacker has nothing left to take (or has had its go at it).
      const exhausted = rounds > 0 && got.length === 0 && grant.limit === undefined
      if ((exhausted || rounds >= 100) && cluster.workers.length === 0) {
        await cluster.addWorker({ vouch: true })
        await cluster.addWorker({ vouch: true })
      }
    }
  })()
  // An attacker that stops on an error fails the test at once (instead of leaving the job waiting).
  const done = await Promise.race([
    waitForJob(cluster.api, job.id, 120_000),
    attack.then(() => waitForJob(cluster.api, job.id, 120_000)),
  ])
  await attack
  t.is(done.state, 'completed')
  t.like((await cluster.api.result(job.id)).result, { count: 148_933 })
  t.true(rounds >= 5, `the attacker handed back leases ${rounds} times`)
  const twice = [...seen].filter(([, n]) => n > 1)
  t.deepEqual(twice, [], 'no unit was granted again to the identity that gave it back')
  const stats = await cluster.coordinators[0]!.store.workerStats(v.identity.id)
  t.is(
    stats.released,
    [...seen.values()].reduce((a, b) => a + b, 0),
    'every hand-back is charged to it',
  )
})

test('lease abuse - a unit fails only once the operator budget of distinct workers have let it go', async (t) => {
  // No hold on reissued replicas here: the three identities have no validated work.
  const cluster = await startCluster({
    services: services(),
    tuning: { maxWorkersPerUnit: 3, reissueHoldMs: 0, letGoGraceMs: 3_600_000 },
  })
  t.teardown(() => cluster.stop())
  const job = await cluster.api.submit({
    type: 'primes',
    params: { to: 10_000, unitSize: 10_000 },
    redundancy: { quorum: 1, maxReplicas: 1 },
  })
  const takeAndGiveBack = async (v: Volunteer): Promise<void> => {
    let got: UnitPayload[] = []
    await waitUntil('the unit granted', async () => {
      got = await openUnits(await v.client.requestWork(1, [PRIMES]))
      return got.length === 1
    })
    t.is((await v.client.release([got[0]!.replicaId], 'no')).released, 1)
    // It never gets that unit again, however often it asks.
    t.is((await v.client.requestWork(1, [PRIMES])).units.length, 0)
  }
  await takeAndGiveBack(await volunteer(t, cluster))
  await takeAndGiveBack(await volunteer(t, cluster))
  t.is((await cluster.api.job(job.id)).state, 'running', 'two workers are within the budget of three')
  await takeAndGiveBack(await volunteer(t, cluster))
  const done = await waitForJob(cluster.api, job.id)
  t.is(done.state, 'failed')
  t.regex(done.error ?? '', /3 distinct workers took it and let it go without a result/)
})

test('lease abuse - a unit given back goes to its giver again only after nobody else took it for the grace period', async (t) => {
  // Two workers at quorum 2 and one hands a unit back: without the grace, that unit could never get
  // its second distinct worker. Everyone else gets first pick for `letGoGraceMs`.
  const graceMs = 1_500
  const cluster = await startCluster({
    services: services(),
    tuning: { reissueHoldMs: 0, letGoGraceMs: graceMs },
  })
  t.teardown(() => cluster.stop())
  await cluster.api.submit({
    type: 'primes',
    params: { to: 10_000, unitSize: 10_000 },
    redundancy: { quorum: 1, maxReplicas: 1 },
  })
  const v = await volunteer(t, cluster)
  let got: UnitPayload[] = []
  await waitUntil('the unit granted', async () => {
    got = await openUnits(await v.client.requestWork(1, [PRIMES]))
    return got.length === 1
  })
  const unitId = got[0]!.unitId
  // Taken before the release is sent, so it is never later than the coordinator's own clock reading.
  const releasedAt = Date.now()
  t.is((await v.client.release([got[0]!.replicaId], 'no')).released, 1)
  let again: UnitPayload[] = []
  await waitUntil('the unit granted to its giver again', async () => {
    again = await openUnits(await v.client.requestWork(1, [PRIMES]))
    return again.length === 1
  })
  // A lower bound only: a slow machine makes it later, never earlier.
  t.true(
    Date.now() - releasedAt >= graceMs,
    `not before the grace period: after ${Date.now() - releasedAt} ms`,
  )
  t.is(again[0]!.unitId, unitId)
  t.not(again[0]!.replicaId, got[0]!.replicaId)
})

test('lease abuse - renewals past the lease lifetime are refused and the replica goes to another worker', async (t) => {
  // Leases of 10 minutes and no reaper during the test: only the lifetime bound can end this lease.
  const params = { to: 10_000_000, unitSize: 10_000_000 }
  const unitMs = estimateMs(params)
  const factor = Math.ceil(3_000 / unitMs)
  const cluster = await startCluster({
    services: services(),
    tuning: {
      reissueHoldMs: 0,
      leaseMs: 600_000,
      reapIntervalMs: 60_000,
      leaseLifetimeFloorMs: 1_000,
      leaseLifetimeFactor: factor,
    },
  })
  t.teardown(() => cluster.stop())
  const job = await cluster.api.submit({ type: 'primes', params, redundancy: { quorum: 1, maxReplicas: 1 } })
  const a = await volunteer(t, cluster)
  let unit: UnitPayload | undefined
  await waitUntil('the only unit granted', async () => {
    unit = (await openUnits(await a.client.requestWork(1, [PRIMES])))[0]
    return unit !== undefined
  })
  const rid = unit!.replicaId
  const store = cluster.coordinators[0]!.store
  const replica = await store.replicaState(rid)
  const maxUntil = Number(replica['maxUntil'])
  t.is(maxUntil - Number(replica['leasedAt']), factor * unitMs, 'lifetime = factor x the unit estimate')
  t.true(unit!.expiresAt <= maxUntil)
  // The holder renews as often as it likes; no deadline passes the bound, and then it is refused.
  let lost = false
  const giveUp = Date.now() + 60_000
  while (!lost) {
    if (Date.now() > giveUp) throw new Error('renewals were never refused')
    const renewed = await a.client.renew([rid])
    lost = renewed.lost.includes(rid)
    if (!lost) t.true(renewed.expiresAt[rid]! <= maxUntil, 'a renewal never passes the lifetime bound')
    else t.true(Date.now() >= maxUntil)
    await pause(100)
  }
  t.is((await store.replicaState(rid))['state'], 'expired')
  t.is(cluster.coordinators[0]!.counters.renewalsRefused, 1)
  t.is((await store.workerStats(a.identity.id)).expired, 1, 'the lost lease is charged to its holder')
  // The holder never gets the unit again; another worker does, and the job completes.
  t.is((await a.client.requestWork(1, [PRIMES])).units.length, 0)
  await cluster.addWorker()
  const done = await waitForJob(cluster.api, job.id)
  t.is(done.state, 'completed')
  t.like((await cluster.api.result(job.id)).result, { count: 664_579 })
})

test('lease abuse - work requests beyond the per-identity rate are refused with a retry time', async (t) => {
  const cluster = await startCluster({
    services: services(),
    tuning: { workRequestBurst: 3, workRequestsPerSecond: 1 },
  })
  t.teardown(() => cluster.stop())
  const v = await volunteer(t, cluster)
  const started = Date.now()
  const grants = await Promise.all(Array.from({ length: 20 }, () => v.client.requestWork(1, [PRIMES])))
  const elapsedS = (Date.now() - started) / 1000
  const limited = grants.filter((g) => g.limit?.by === 'rate')
  // However long the requests took, at most burst + rate x elapsed were served.
  const allowed = 3 + Math.ceil(elapsedS * 1)
  t.true(
    grants.length - limited.length <= allowed,
    `${grants.length - limited.length} served in ${elapsedS} s`,
  )
  t.true(limited.length >= Math.max(0, 20 - allowed))
  for (const g of limited) {
    t.is(g.units.length, 0)
    t.true(g.retryAfterMs > 0 && g.retryAfterMs <= 1_000)
    t.regex(g.limit!.message, /too many work requests/)
  }
  t.is(cluster.coordinators[0]!.counters.workRequestsLimited, limited.length)
  // Another identity has a bucket of its own.
  const other = await volunteer(t, cluster)
  t.is((await other.client.requestWork(1, [PRIMES])).limit, undefined)
})

test('lease abuse - credit is the job type estimate of each validated unit, whatever compute time workers claim', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const params = { to: 10_000_000, unitSize: 5_000_000 }
  const job = await cluster.api.submit({ type: 'primes', params, redundancy: { quorum: 2 } })
  const claims = [7 * 24 * 3600_000, 0]
  const [a, b] = [await volunteer(t, cluster), await volunteer(t, cluster)]
  for (const [i, v] of [a, b].entries()) {
    // Each takes both units, computes them honestly, and claims an absurd or a zero compute time.
    let got: UnitPayload[] = []
    await waitUntil('units granted', async () => {
      got = [...got, ...(await openUnits(await v.client.requestWork(2, [PRIMES])))]
      return got.length === 2
    })
    for (const u of got) {
      const { output, digest } = await computeOutput(u.kind, u.input)
      const ack = await v.client.submitResult({
        replicaId: u.replicaId,
        unitId: u.unitId,
        jobId: u.jobId,
        digest,
        output,
        computeMs: claims[i]!,
      })
      t.is(ack.status, 'accepted')
    }
  }
  t.is((await waitForJob(cluster.api, job.id)).state, 'completed')
  const store = cluster.coordinators[0]!.store
  const [sa, sb] = [await store.workerStats(a.identity.id), await store.workerStats(b.identity.id)]
  t.is(sa.valid, 2)
  t.is(sb.valid, 2)
  t.is(sa.creditMs, 2 * estimateMs(params), 'credit = units validated x the estimate, not the claim')
  t.is(sb.creditMs, 2 * estimateMs(params))
  // The claim is kept as information, bounded by how long the worker held each lease.
  t.true(sa.claimedMs < claims[0]!, `claimed ${sa.claimedMs} ms`)
  t.is(sb.claimedMs, 0)
})

test('lease abuse - a replica reissued after a lost lease waits for a worker with validated work, not a new identity', async (t) => {
  const cluster = await startCluster({ services: services(), tuning: { reissueHoldMs: 600_000 } })
  t.teardown(() => cluster.stop())
  const one = {
    type: 'primes',
    params: { to: 10_000, unitSize: 10_000 },
    redundancy: { quorum: 1, maxReplicas: 1 },
  }
  const [x, y, z] = [await volunteer(t, cluster), await volunteer(t, cluster), await volunteer(t, cluster)]
  const first = await cluster.api.submit(one)
  let taken: UnitPayload | undefined
  await waitUntil('the unit granted', async () => {
    taken = (await openUnits(await x.client.requestWork(1, [PRIMES])))[0]
    return taken !== undefined
  })
  t.is((await x.client.release([taken!.replicaId], 'no')).released, 1)
  // z earns standing on another job; y has none.
  const second = await cluster.api.submit(one)
  let own: UnitPayload | undefined
  await waitUntil('a unit of the second job granted', async () => {
    own = (await openUnits(await z.client.requestWork(1, [PRIMES])))[0]
    return own !== undefined
  })
  t.is(own!.jobId, second.id, 'the reissued replica is not given to an identity without standing')
  const { output, digest } = await computeOutput(own!.kind, own!.input)
  const fields = {
    replicaId: own!.replicaId,
    unitId: own!.unitId,
    jobId: own!.jobId,
    digest,
    output,
    computeMs: 1,
  }
  t.is((await z.client.submitResult(fields)).status, 'accepted')
  t.is((await y.client.requestWork(1, [PRIMES])).units.length, 0)
  const reissued = await openUnits(await z.client.requestWork(1, [PRIMES]))
  t.is(reissued.length, 1)
  t.is(reissued[0]!.jobId, first.id)
  t.not(reissued[0]!.replicaId, taken!.replicaId)
})
