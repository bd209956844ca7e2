// Backtracking: an identity caught with a wrong result has every unit it returned a result for
// validated again; completed jobs with such units are recomputed and their result revised. The
// attackers play the protocol themselves (their own volunteer connections, signed results); honest
// workers are real daemons. Each test fails without its defence (docs/security.md, "Backtracking").
import test, { type ExecutionContext } from 'ava'
import { Redis } from 'ioredis'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { builtinJobTypes } from '../jobs/index.js'
import { createStore } from '../coordinator/store/store.js'
import { connect, type JobEvent } from '../client/index.js'
import {
  encode,
  openUnit,
  parseUnitPayload,
  sha256Hex,
  type Identity,
  type UnitPayload,
} from '../shared/index.js'
import { trustedKeysFrom, verifyUnit } from '../worker/index.js'
import { spawnCohort, startCluster, waitForJob, waitUntil, type Cluster } from './helpers/cluster.js'
import { computeOutput, PRIMES, type ResultFields } from './helpers/protocol-fixtures.js'
import { useServices } from './helpers/services.js'
import { rawVolunteer, type RawVolunteer } from './helpers/volunteer.js'

const services = useServices(test)

/** A volunteer identity played by the test, on its own connection. */
type Player = RawVolunteer

/** Ask for `n` units as `p`, verified as a worker would; exactly `n` must be granted. */
async function lease(t: ExecutionContext, cluster: Cluster, p: Player, n: number): Promise<UnitPayload[]> {
  const grant = await p.client.requestWork(n, [PRIMES])
  t.is(grant.units.length, n, `${n} units granted`)
  const { keyId, publicKey } = cluster.identity
  const trusted = trustedKeysFrom([{ keyId, publicKey }])
  return Promise.all(
    grant.units.map((u) =>
      verifyUnit(u, { trusted, self: p.identity.id, jobTypes: builtinJobTypes, now: Date.now() }),
    ),
  )
}

/** The result for `unit`: honest, or with `lie` added to the prime count (well-formed, correctly digested). */
async function resultFor(unit: UnitPayload, lie = 0): Promise<ResultFields> {
  const { value } = await computeOutput(unit.kind, unit.input)
  const v = value as { count: number }
  const output = encode(lie === 0 ? v : { ...v, count: v.count + lie })
  return {
    replicaId: unit.replicaId,
    unitId: unit.unitId,
    jobId: unit.jobId,
    digest: await sha256Hex(output),
    output,
    computeMs: 1,
  }
}

async function submit(t: ExecutionContext, p: Player, unit: UnitPayload, lie = 0): Promise<void> {
  t.like(await p.client.submitResult(await resultFor(unit, lie)), { status: 'accepted' }, unit.unitId)
}

/** Raw Redis reads of a cluster's keys. */
function redisOf(t: ExecutionContext, cluster: Cluster) {
  const redis = new Redis(services().redisUrl)
  t.teardown(() => redis.quit())
  const p = cluster.redisPrefix
  return {
    unit: (uid: string) => redis.hgetall(`${p}unit:${uid}`),
    index: (worker: string) => redis.zrange(`${p}worker:${worker}:units`, 0, '-1'),
    /** Identities on the leaderboard (docs/volunteers.md), with their credit. */
    board: async () => new Map(chunk(await redis.zrange(`${p}lb:credit`, 0, '-1', 'WITHSCORES'))),
  }
}

const chunk = (flat: string[]): [string, number][] =>
  flat.flatMap((v, i) => (i % 2 === 0 ? [[v, Number(flat[i + 1])] as [string, number]] : []))

const byWorker = (rs: { worker: string }[], w: Identity) => rs.filter((r) => r.worker === w.id)

test('backtracking - a cheater that backed units of a completed job is caught: every unit it helped validate is validated again, the job is recomputed and its result revised; honest results stay', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const coordinator = cluster.coordinators[0]!
  const { store } = coordinator
  const raw = redisOf(t, cluster)
  const [c1, c2, h1, h2] = [
    await rawVolunteer(t, cluster),
    await rawVolunteer(t, cluster),
    await rawVolunteer(t, cluster),
    await rawVolunteer(t, cluster),
  ] as [Player, Player, Player, Player]

  // Job A: 4 units at quorum 2. C1 gets one replica of each unit, the honest H1 the second of two of
  // them (picked at random), C1's partner C2 the second of the other two.
  const jobA = await cluster.api.submit({
    type: 'primes',
    params: { to: 40_000, unitSize: 10_000 },
    redundancy: { quorum: 2 },
  })
  await waitUntil('job A planned', async () => (await cluster.api.job(jobA.id)).units.planned)
  const ofC1 = await lease(t, cluster, c1, 4)
  const ofH1 = await lease(t, cluster, h1, 2)
  const ofC2 = await lease(t, cluster, c2, 2)
  const unitIds = ofC1.map((u) => u.unitId).sort()
  const ofH1Ids = ofH1.map((u) => u.unitId).sort()
  const ofC2Ids = ofC2.map((u) => u.unitId).sort()
  t.deepEqual(
    [...ofH1Ids, ...ofC2Ids].sort(),
    unitIds,
    'H1 and C2 hold the second replicas of different units',
  )
  // C1 and C2 are honest, except on one of C2's units, where both forge the same count (one more prime).
  const forgedUnit = ofC2Ids[1]
  for (const u of ofC1) await submit(t, c1, u, u.unitId === forgedUnit ? 1 : 0)
  for (const u of ofH1) await submit(t, h1, u)
  for (const u of ofC2) await submit(t, c2, u, u.unitId === forgedUnit ? 1 : 0)
  const forged = await waitForJob(cluster.api, jobA.id)
  t.is(forged.state, 'completed')
  t.like(
    (await cluster.api.result(jobA.id)).result,
    { count: 4204 },
    'the forged count (4203 + 1) was accepted',
  )
  t.deepEqual((await raw.index(c1.identity.id)).sort(), unitIds, "C1's reverse index: all four units")

  // Job B: C1 lies against the honest H1 and H2, and is caught when their result is accepted.
  const jobB = await cluster.api.submit({ type: 'primes', params: { to: 10_000 }, redundancy: { quorum: 2 } })
  await waitUntil('job B planned', async () => (await cluster.api.job(jobB.id)).units.planned)
  const [b1] = (await lease(t, cluster, c1, 1)) as [UnitPayload]
  const [b2] = (await lease(t, cluster, h1, 1)) as [UnitPayload]
  await submit(t, c1, b1, 7)
  await submit(t, h1, b2)
  const [b3] = (await lease(t, cluster, h2, 1)) as [UnitPayload]
  t.is(
    b3.jobId,
    jobB.id,
    "the replica issued on disagreement goes to H2, before anything of C1's is reopened",
  )
  await submit(t, h2, b3)
  t.like(await waitForJob(cluster.api, jobB.id), { state: 'completed' })
  t.like((await cluster.api.result(jobB.id)).result, { count: 1229 })
  await waitUntil(
    'C1 backtracked',
    async () => (await store.caught(c1.identity.id))?.backtrackedAt !== undefined,
  )
  t.regex((await store.caught(c1.identity.id))?.reason ?? '', /disagreed with the accepted one/)

  // Every unit C1 returned a result for has its results discarded (kept for audit) and was decided
  // again: none of job A's units still makes a quorum without C1, so each is pending with a new replica.
  for (const uid of unitIds) {
    t.deepEqual(byWorker(await store.unitResults(uid), c1.identity), [], `${uid}: no result of C1 counts`)
    const discarded = await store.discardedResults(uid)
    t.is(byWorker(discarded, c1.identity).length, 1, `${uid}: C1's result kept as discarded`)
    const rid = discarded[0]!.replicaId
    t.truthy((await store.replicaState(rid))['discarded'], `${uid}: C1's replica marked discarded`)
    t.like(await raw.unit(uid), { state: 'pending', reopened: '1', issued: '2' }, uid)
  }
  // Its losing result on job B is discarded too; that unit stays validated by H1 and H2.
  t.is(byWorker(await store.discardedResults(b1.unitId), c1.identity).length, 1)
  t.like(await raw.unit(b1.unitId), { state: 'validated' })
  t.deepEqual(await raw.index(c1.identity.id), [], "C1's reverse index is worked off")

  // The completed job is under revision: its result still readable, marked so.
  const revising = await cluster.api.job(jobA.id)
  t.is(revising.state, 'revising')
  t.is(revising.units.validated, 0)
  const during = await cluster.api.result(jobA.id)
  t.like(during, { revising: true, result: { count: 4204 } })
  t.is(during.revisions?.length, 1)
  t.like(during.revisions?.[0], { units: 4 })
  t.regex(during.revisions?.[0]?.reason ?? '', new RegExp(`worker ${c1.identity.id} caught`))
  t.is(during.revisions?.[0]?.changed, undefined, 'not merged again yet')

  // C1 gets no more work and its results are refused.
  await t.throwsAsync(c1.client.requestWork(1, [PRIMES]), { message: /caught with a wrong result/ })
  t.like(await c1.client.submitResult(await resultFor(b1)), { status: 'rejected' })
  t.true(coordinator.counters.bannedRefused >= 2)

  // Honest daemons recompute. On the forged unit C2's forgery now meets honest results: C2 is caught
  // in turn, and the other unit C2 had backed is validated once more.
  await cluster.addWorker()
  await cluster.addWorker()
  await waitUntil('C2 caught', async () => (await store.caught(c2.identity.id))?.backtrackedAt !== undefined)
  await waitUntil(
    'job A revised',
    async () => (await cluster.api.job(jobA.id)).state === 'completed',
    120_000,
  )
  const revised = await cluster.api.result(jobA.id)
  t.like(revised.result, { count: 4203 }, 'the right count: π(40000) = 4203')
  t.is(revised.revising, undefined)
  const revisions = revised.revisions ?? []
  t.is(revisions.length, 2, JSON.stringify(revisions))
  t.like(revisions[0], { units: 4, changed: true })
  t.regex(revisions[0]?.reason ?? '', new RegExp(`worker ${c1.identity.id} caught`))
  // C2 lost its results for its two units. Whether job A had already been merged again when C2's
  // backtrack reached it (then a second revision, unchanged) depends on which step ran first.
  t.like(revisions[1], { units: 2 })
  t.is(typeof revisions[1]?.changed, 'boolean')
  t.regex(revisions[1]?.reason ?? '', new RegExp(`worker ${c2.identity.id} caught`))
  t.truthy(revisions[0]?.revisedAt)
  t.deepEqual((await cluster.api.job(jobA.id)).revisions, revisions)
  // The job's event stream told a follower of each step: completed, under revision (its units
  // reopened), and each revision merged.
  const events: JobEvent[] = []
  let merged = 0
  for await (const e of cluster.api.events(jobA.id)) {
    events.push(e)
    if (e.type === 'revised') merged += e.data.revisions
    if (merged === revisions.length) break
  }
  const states = events.flatMap((e) => (e.type === 'state' ? [e.data.state] : []))
  t.deepEqual(states.slice(0, 3), ['queued', 'running', 'completed'])
  t.true(states.includes('revising'), states.join(' '))
  // A revision merged while another was under way is merged with it: one event for both.
  const first = events.find((e) => e.type === 'revised')
  t.like(first, { data: { changed: true } })
  t.true(first?.type === 'revised' && first.data.units >= 4, JSON.stringify(first))
  t.true(
    events.some((e) => e.type === 'progress' && e.data.validated < 4),
    'reopened units lower the validated count',
  )
  for (const uid of unitIds) {
    const u = await raw.unit(uid)
    t.is(u['state'], 'validated', uid)
    const results = await store.unitResults(uid)
    t.deepEqual(byWorker(results, c2.identity), [], `${uid}: no result of C2 counts`)
  }

  // Honest identities are not punished: H1's results stay, counted once each (its two units of job A
  // and job B), and it still gets work.
  for (const uid of ofH1Ids) t.is(byWorker(await store.unitResults(uid), h1.identity).length, 1)
  t.like(await store.workerStats(h1.identity.id), { valid: 3, invalid: 0 })
  t.like(await store.workerStats(h2.identity.id), { valid: 1, invalid: 0 })
  for (const h of [h1, h2, ...cluster.workers]) t.is(await store.caught(h.identity.id), undefined)
  // The caught identities are off the leaderboard; the honest ones are on it with their credit.
  const board = await redisOf(t, cluster).board()
  t.false(board.has(c1.identity.id))
  t.false(board.has(c2.identity.id))
  for (const h of [h1, h2]) t.is(board.get(h.identity.id), (await store.workerStats(h.identity.id)).creditMs)
  await cluster.workers[0]!.stop()
  await cluster.workers[1]!.stop()
  const jobC = await cluster.api.submit({ type: 'primes', params: { to: 1_000 }, redundancy: { quorum: 1 } })
  await waitUntil('job C planned', async () => (await cluster.api.job(jobC.id)).units.planned)
  t.is((await h1.client.requestWork(1, [PRIMES])).units.length, 1, 'H1 still gets work')
})

test('backtracking - the entry point is idempotent, and a backtrack survives kill -9 of its coordinator', async (t) => {
  const cluster = await startCluster({ services: services(), coordinators: 0 })
  const dir = await mkdtemp(join(tmpdir(), 'cohort-backtrack-'))
  t.teardown(async () => {
    await cluster.stop()
    await rm(dir, { recursive: true, force: true })
  })
  const keyFile = await cluster.writeCoordinatorKey(dir)
  const first = spawnCohort(cluster.coordinatorArgs(keyFile, '--anonymous'), cluster.coordinatorEnv)
  t.teardown(() => first.kill())
  const line = await first.waitForLine(/coordinator listening on/)
  const url = /listening on (\S+);/.exec(line)?.[1] ?? ''
  const api = connect({ url: url })
  // Players sign up with the coordinator that runs now.
  const signup = {
    volunteerAccess: { natsUrl: services().natsUrl, coordinatorUrl: url },
    subjectPrefix: cluster.subjectPrefix,
  }
  const [x, y] = [await rawVolunteer(t, signup), await rawVolunteer(t, signup)]
  // The operator's own hosts: their two results make a credible quorum from the first unit.
  await cluster.vouch(x.identity.id, y.identity.id)

  // A job of 100 units backed by X and Y, both honest.
  const N = 100
  const job = await api.submit({ type: 'primes', params: { to: N * 1_000, unitSize: 1_000 } })
  await waitUntil('planned', async () => (await api.job(job.id)).units.planned)
  // Replicas are picked at random and a unit's two are spread out in time: each takes what it may
  // (waiting out empty grants and the rate limit) until the job is done.
  while ((await api.job(job.id)).state !== 'completed') {
    let got = 0
    let wait = 1_000
    for (const p of [x, y]) {
      const grant = await p.client.requestWork(4, [PRIMES])
      wait = Math.min(wait, grant.retryAfterMs > 0 ? grant.retryAfterMs : wait)
      for (const envelope of grant.units) {
        const u = parseUnitPayload(await openUnit(envelope))
        await submit(t, p, u)
        got++
      }
    }
    if (got === 0) await new Promise((r) => setTimeout(r, wait))
  }

  // X is caught, as a coordinator that died right after recording it would leave it: caught and due,
  // its backtrack never enqueued. The running coordinator's sweep takes it up; it is stopped
  // (SIGSTOP) the moment its reverse index starts to shrink, then killed: a fresh coordinator must
  // finish what it left, wherever that was.
  const redis = new Redis(services().redisUrl)
  t.teardown(() => redis.quit())
  const reason = 'failed a spot check'
  const raw = createStore({ redis, prefix: cluster.redisPrefix })
  t.true(await raw.markCaught(x.identity.id, reason, Date.now()))
  t.false(await raw.markCaught(x.identity.id, 'again', Date.now()), 'caught once')
  const index = async () => redis.zcard(`${cluster.redisPrefix}worker:${x.identity.id}:units`)
  t.is(await index(), N)
  // A coordinator killed between the script that reopens a unit and the decision on it leaves units
  // 0 to 9 reopened, undecided and still in the index: they are done again below.
  for (let i = 0; i < 10; i++) {
    const r = await raw.backtrackUnit(
      `${job.id}:${i}`,
      x.identity.id,
      `worker ${x.identity.id} caught: ${reason}`,
      Date.now(),
    )
    t.like(r, { unitState: 'pending', discarded: 1, reopened: true })
  }
  t.is(await index(), N)
  const deadline = Date.now() + 60_000
  while ((await index()) === N && Date.now() < deadline) {
    // Polled without a pause, so the stop lands as early as possible.
  }
  first.child.kill('SIGSTOP')
  const left = await index()
  t.log(`stopped, then killed, with ${left} of ${N} units of the reverse index left`)
  await first.kill('SIGKILL')

  const second = await cluster.addCoordinator()
  const third = await cluster.addCoordinator()
  await waitUntil(
    'X backtracked',
    async () => (await second.store.caught(x.identity.id))?.backtrackedAt !== undefined,
    60_000,
  )
  // Called again, on two coordinators at once: nothing changes.
  await Promise.all([second.backtrack(x.identity.id, reason), third.backtrack(x.identity.id, 'again')])
  await Promise.all([second.backtrack(x.identity.id, reason), third.backtrack(x.identity.id, 'again')])

  const units = Array.from({ length: N }, (_, i) => `${job.id}:${i}`)
  const state = async () =>
    Promise.all(
      units.map(async (uid) => ({
        unit: await redis.hmget(`${cluster.redisPrefix}unit:${uid}`, 'state', 'issued', 'reopened'),
        results: await second.store.unitResults(uid),
        discarded: await second.store.discardedResults(uid),
      })),
    )
  const after = await state()
  for (const [i, u] of after.entries()) {
    t.deepEqual(u.unit, ['pending', '2', '1'], `unit ${i}: reopened exactly once, one new replica`)
    t.deepEqual(byWorker(u.results, y.identity).length, 1, `unit ${i}: Y's result stays`)
    t.deepEqual(
      u.discarded.map((r) => r.worker),
      [x.identity.id],
      `unit ${i}: X's result discarded once`,
    )
  }
  const revising = await second.store.getJob(job.id)
  t.is(revising?.state, 'revising')
  t.is(revising?.unitsValidated, 0)
  t.deepEqual(
    revising?.revisions.map((r) => [r.units, r.reason]),
    [[N, `worker ${x.identity.id} caught: ${reason}`]],
    'one revision, every unit counted once',
  )
  t.like(await second.store.workerStats(y.identity.id), { valid: N, invalid: 0 })
  t.is(await index(), 0)
  t.deepEqual(await state(), after)

  // Honest daemons recompute; the result is revised, unchanged (X had been honest).
  await cluster.addWorker({ coordinatorUrl: second.url })
  const done = await waitForJob(connect({ url: second.url }), job.id)
  t.is(done.state, 'completed')
  t.like((await connect({ url: second.url }).result(job.id)).result, { count: 9592 })
  t.like(done.revisions?.[0], { units: N, changed: false })
  t.like(await second.store.workerStats(y.identity.id), { valid: N, invalid: 0 })
})
