// Earned trust (docs/security.md, "Credibility and adaptive replication"): forged results from new
// identities are never accepted, a trusted identity's units go out alone and are spot-checked, a
// cheater is caught with a backtrack request, jobs set their own redundancy, and an honest crowd of
// trusted workers costs few replicas per unit. Attackers speak the protocol on volunteer connections
// of their own, against real Redis and NATS.
import test, { type ExecutionContext } from 'ava'
import { Redis } from 'ioredis'
import { encode, sha256Hex, type UnitPayload } from '../shared/index.js'
import { startCluster, waitForJob, waitUntil, type Cluster } from './helpers/cluster.js'
import { computeOutput, openUnits, PRIMES } from './helpers/protocol-fixtures.js'
import { useServices } from './helpers/services.js'
import { rawVolunteer, type RawVolunteer } from './helpers/volunteer.js'

const services = useServices(test)

type Volunteer = RawVolunteer

/** A volunteer played by the test, named in the NATS server's connection list. */
const volunteer = (t: ExecutionContext, cluster: Cluster, name: string): Promise<Volunteer> =>
  rawVolunteer(t, cluster, { name, timeoutMs: 10_000 })

/** Ask for up to `want` units, waiting out the rate limit: [] when there is nothing for `v` now. */
async function take(v: Volunteer, want: number): Promise<UnitPayload[]> {
  for (;;) {
    const grant = await v.client.requestWork(want, [PRIMES])
    if (grant.limit?.by === 'rate') {
      await new Promise((r) => setTimeout(r, grant.retryAfterMs))
      continue
    }
    return openUnits(grant)
  }
}

const FORGED = encode({ count: 1 })

async function submit(v: Volunteer, u: UnitPayload, forge: boolean) {
  const { output, digest } = forge
    ? { output: FORGED, digest: await sha256Hex(FORGED) }
    : await computeOutput(u.kind, u.input)
  return v.client.submitResult({
    replicaId: u.replicaId,
    unitId: u.unitId,
    jobId: u.jobId,
    digest,
    output,
    computeMs: 1,
  })
}

/** Whether `workerId` was caught and its backtracking requested (still due, or already done). */
async function backtrackRequested(cluster: Cluster, workerId: string): Promise<boolean> {
  const store = cluster.coordinators[0]!.store
  // Due first: finishing a backtrack takes the identity off the due list and stamps backtrackedAt in
  // one script, so an identity no longer due when asked has its stamp when read after.
  const due = await store.isDue(workerId)
  const caught = await store.caught(workerId)
  return caught !== undefined && (due || caught.backtrackedAt !== undefined)
}

/** Replicas of a job's units that went out to a worker (computed, or lost in a worker's hands). */
async function replicasUsed(cluster: Cluster, jobId: string, units: number): Promise<number> {
  const redis = new Redis(services().redisUrl)
  try {
    let n = 0
    for (let i = 0; i < units; i++) {
      const uid = `${jobId}:${i}`
      const seq = Number((await redis.hget(`${cluster.redisPrefix}unit:${uid}`, 'replicaSeq')) ?? 0)
      for (let r = 1; r <= seq; r++) {
        const state = await redis.hget(`${cluster.redisPrefix}replica:${uid}:r${r}`, 'state')
        if (state === 'done' || state === 'expired' || state === 'released') n++
      }
    }
    return n
  } finally {
    redis.disconnect()
  }
}

test('credibility - two new identities returning the same forged result never get it accepted; honest workers finish the job and the forgers are caught', async (t) => {
  const cluster = await startCluster({ services: services(), vouch: false })
  t.teardown(() => cluster.stop())
  const store = cluster.coordinators[0]!.store
  const job = await cluster.api.submit({ type: 'primes', params: { to: 600_000, unitSize: 100_000 } })
  await waitUntil('the job to be planned', async () => (await cluster.api.job(job.id)).units.planned)
  const [a, b] = [await volunteer(t, cluster, 'forger-a'), await volunteer(t, cluster, 'forger-b')]

  // Back to back, each takes every replica it may and returns the same forged count.
  let forged = 0
  for (;;) {
    const got = [...(await take(a, 4)), ...(await take(b, 4))]
    if (got.length === 0) break
    for (const u of got) {
      const v = u.worker === a.identity.id ? a : b
      t.is((await submit(v, u, true)).status, 'accepted')
      forged++
    }
  }
  t.is(forged, 12, 'each forger computed each of the 6 units once')
  const during = await cluster.api.job(job.id)
  t.is(during.units.validated, 0, 'no unit accepted on the forgers alone')
  t.is(during.state, 'running')
  t.true(during.extraReplicas >= 6, 'each unit asked for another replica')

  // Honest hosts the operator vouched for arrive: the job completes with the true count.
  await cluster.addWorker({ vouch: true })
  await cluster.addWorker({ vouch: true })
  const done = await waitForJob(cluster.api, job.id)
  t.is(done.state, 'completed')
  t.like((await cluster.api.result(job.id)).result, { count: 49_098 })

  // Both forgers disagreed with accepted results: caught, credibility zero, backtrack requested.
  for (const v of [a, b]) {
    const stats = await store.workerStats(v.identity.id)
    t.regex(stats.caught?.reason ?? '', /disagreed with the accepted one/)
    t.is(stats.valid, 0)
    t.is((await store.credibility(v.identity.id)).credibility, 0)
    t.true(await backtrackRequested(cluster, v.identity.id))
  }
  t.is(cluster.coordinators[0]!.counters.identitiesCaught, 2)

  // A caught identity gets no more work; a new one does.
  await Promise.all(cluster.workers.map((w) => w.stop()))
  const next = await cluster.api.submit({ type: 'primes', params: { to: 100_000, unitSize: 50_000 } })
  await waitUntil('the next job to be planned', async () => (await cluster.api.job(next.id)).units.planned)
  await t.throwsAsync(take(a, 4), { message: /caught with a wrong result and gets no more work/ })
  t.true((await take(await volunteer(t, cluster, 'newcomer'), 4)).length > 0)
})

test('credibility - a worker that earns trust gets units alone, then turns bad, and a spot check catches it', async (t) => {
  const cluster = await startCluster({ services: services(), vouch: false })
  t.teardown(() => cluster.stop())
  const store = cluster.coordinators[0]!.store
  const redis = new Redis(services().redisUrl)
  t.teardown(() => redis.disconnect())
  const [d1, d2] = [await cluster.addWorker({ vouch: true }), await cluster.addWorker({ vouch: true })]
  // Trust at 0.99 takes five checked results (f = 0.1); half of the lone results are checked.
  const redundancy = { quorum: 2, minCredibility: 0.99, spotCheckRate: 0.5 }
  const submitJob = async () =>
    (await cluster.api.submit({ type: 'primes', params: { to: 20_000_000, unitSize: 100_000 }, redundancy }))
      .id
  let jobId = await submitJob()
  const cheater = await volunteer(t, cluster, 'turncoat')
  const me = cheater.identity.id

  let honest = 0
  let lies = 0
  let passedBeforeLying: number | undefined
  const MAX_LIES = 30
  while ((await store.workerStats(me)).caught === undefined) {
    const units = await take(cheater, 1)
    if (units.length === 0) {
      // Keep work coming, whatever the machine's speed: a finished job is followed by another.
      const job = await cluster.api.job(jobId)
      if (job.state === 'completed') jobId = await submitJob()
      else await new Promise((r) => setTimeout(r, 25))
      continue
    }
    const u = units[0]!
    // The cheater is given every advantage: it lies only on units it holds alone.
    const alone = (await redis.hget(`${cluster.redisPrefix}unit:${u.unitId}`, 'solo')) === me
    if (!alone) {
      t.not((await submit(cheater, u, false)).status, 'rejected')
      honest++
      continue
    }
    passedBeforeLying ??= (await store.workerStats(me)).passed
    t.true(lies < MAX_LIES, `caught within ${MAX_LIES} lies`)
    if (lies >= MAX_LIES) return
    t.is((await submit(cheater, u, true)).status, 'accepted')
    lies++
    // Wait until the unit is settled (accepted alone, or checked and the cheater caught).
    await waitUntil('the lie to be settled', async () => {
      const state = await redis.hget(`${cluster.redisPrefix}unit:${u.unitId}`, 'state')
      return state !== 'pending' || (await store.workerStats(me)).caught !== undefined
    })
  }
  t.log(`honest results ${honest}, checked ones ${passedBeforeLying ?? 0}, lies before caught ${lies}`)
  t.true((passedBeforeLying ?? 0) >= 5, 'it earned trust with checked results first')
  t.true(lies >= 1, 'it was given units alone (replication 1)')
  const stats = await store.workerStats(me)
  t.regex(stats.caught?.reason ?? '', /^failed a spot check/)
  t.is((await store.credibility(me)).credibility, 0)
  t.true(await backtrackRequested(cluster, me))
  const counters = cluster.coordinators[0]!.counters
  t.true(counters.spotChecks >= 1)
  t.is(counters.identitiesCaught, 1)
  // The honest hosts were never punished.
  for (const d of [d1, d2]) t.is((await store.workerStats(d.identity.id)).caught, undefined)
})

test('credibility - per-job redundancy is honoured, and bad values are refused naming the field', async (t) => {
  // The operator lets two agreeing identities validate without an anchor (unanchoredGroup 2): a
  // job's minimum credibility then decides whether two new identities are enough.
  const cluster = await startCluster({ services: services(), vouch: false, tuning: { unanchoredGroup: 2 } })
  t.teardown(() => cluster.stop())
  const url = cluster.coordinators[0]!.url
  const post = async (redundancy: unknown) => {
    const r = await fetch(`${url}/v1/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'primes', params: { to: 10_000 }, redundancy }),
    })
    return { status: r.status, body: (await r.json()) as Record<string, unknown> }
  }
  for (const [redundancy, field] of [
    [{ minCredibility: 0.3 }, 'redundancy.minCredibility'],
    [{ minCredibility: 1 }, 'redundancy.minCredibility'],
    [{ minCredibility: '0.99' }, 'redundancy.minCredibility'],
    [{ spotCheckRate: -0.1 }, 'redundancy.spotCheckRate'],
    [{ spotCheckRate: 2 }, 'redundancy.spotCheckRate'],
    [{ quorum: 3, maxReplicas: 2 }, 'redundancy.maxReplicas'],
    [{ trust: 1 }, 'redundancy.trust'],
  ] as const) {
    const r = await post(redundancy)
    t.is(r.status, 422, JSON.stringify(redundancy))
    t.is(r.body['field'], field)
  }

  const oneUnit = (minCredibility: number) => ({
    type: 'primes',
    params: { to: 10_000, unitSize: 10_000 },
    redundancy: { quorum: 2, maxReplicas: 4, minCredibility, spotCheckRate: 0.25 },
  })
  const lenient = await cluster.api.submit(oneUnit(0.98))
  const strict = await cluster.api.submit(oneUnit(0.9999))
  t.like((await cluster.api.job(lenient.id)).redundancy, {
    quorum: 2,
    maxReplicas: 4,
    minCredibility: 0.98,
    spotCheckRate: 0.25,
  })
  for (const id of [lenient.id, strict.id])
    await waitUntil('planned', async () => (await cluster.api.job(id)).units.planned)
  // Two new identities agree on the true answer of both units: credibility 0.81 / 0.82 = 0.988.
  for (const v of [await volunteer(t, cluster, 'new-1'), await volunteer(t, cluster, 'new-2')]) {
    const got = await take(v, 2)
    t.is(got.length, 2)
    for (const u of got) t.is((await submit(v, u, false)).status, 'accepted')
  }
  const done = await waitForJob(cluster.api, lenient.id)
  t.is(done.state, 'completed')
  t.like((await cluster.api.result(lenient.id)).result, { count: 1229 })
  const waiting = await cluster.api.job(strict.id)
  t.is(waiting.units.validated, 0, 'at 0.9999 two new identities are not enough')
  t.is(waiting.extraReplicas, 1, 'another replica was asked for')
})

test('credibility - an honest crowd of trusted workers costs at most 1.3 replicas per accepted unit', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const store = cluster.coordinators[0]!.store
  const workers = [await cluster.addWorker(), await cluster.addWorker()]
  const params = (units: number) => ({ to: units * 100_000, unitSize: 100_000 })
  const run = async (units: number, spotCheckRate: number) => {
    const { id } = await cluster.api.submit({
      type: 'primes',
      params: params(units),
      redundancy: { quorum: 2, minCredibility: 0.99, spotCheckRate },
    })
    const done = await waitForJob(cluster.api, id)
    t.is(done.state, 'completed')
    return (await replicasUsed(cluster, id, units)) / units
  }
  // Warm-up: the vouched hosts earn trust at 0.99 (five checked results each).
  for (let i = 0; i < 20; i++) {
    const earned = await Promise.all(
      workers.map(async (w) => (await store.credibility(w.identity.id)).earned),
    )
    if (earned.every((e) => e >= 0.99)) break
    await run(20, 0.1)
  }
  const adaptive = await run(60, 0.1)
  const full = await run(60, 1)
  t.log(
    `replicas per accepted unit: ${adaptive.toFixed(3)} with adaptive replication, ${full.toFixed(3)} without`,
  )
  t.true(adaptive <= 1.3, `${adaptive} replicas per unit`)
  t.true(full >= 2, 'without it every unit takes its quorum')
  t.true(cluster.coordinators[0]!.counters.unitsAcceptedAlone > 0)
})

test('credibility - when results agree but hold no anchor, the next replica waits for an anchor instead of using up maxReplicas', async (t) => {
  const cluster = await startCluster({ services: services(), vouch: false })
  t.teardown(() => cluster.stop())
  const job = await cluster.api.submit({
    type: 'primes',
    params: { to: 50_000, unitSize: 50_000 },
    redundancy: { quorum: 2, maxReplicas: 3 },
  })
  await waitUntil('the job to be planned', async () => (await cluster.api.job(job.id)).units.planned)
  // Two honest new identities agree: not credible enough (0.9878), so one more replica is issued.
  const [a, b] = [await volunteer(t, cluster, 'a'), await volunteer(t, cluster, 'b')]
  let ua: UnitPayload[] = []
  let ub: UnitPayload[] = []
  await waitUntil('a holds the unit', async () => (ua = await take(a, 1)).length === 1)
  await waitUntil('b holds the unit', async () => (ub = await take(b, 1)).length === 1)
  await submit(a, ua[0]!, false)
  await submit(b, ub[0]!, false)
  await waitUntil('another replica issued', async () => (await cluster.api.job(job.id)).extraReplicas === 1)
  // A third new identity could only agree too, and the unit would fail at maxReplicas: it gets nothing.
  const c = await volunteer(t, cluster, 'c')
  t.deepEqual(await take(c, 1), [])
  // An identity the operator vouched for gets it, and its result settles the unit.
  const d = await volunteer(t, cluster, 'vouched')
  await cluster.vouch(d.identity.id)
  let ud: UnitPayload[] = []
  await waitUntil('the vouched host gets the replica', async () => (ud = await take(d, 1)).length === 1)
  await submit(d, ud[0]!, false)
  const done = await waitForJob(cluster.api, job.id)
  t.is(done.state, 'completed')
  t.like((await cluster.api.result(job.id)).result, { count: 5_133 })
})
