// The coordinator refuses bad results: bad signatures, results for replicas leased to someone
// else, duplicates, and digests that do not match their output. The test plays the worker itself.
import test, { type ExecutionContext } from 'ava'
import { connect } from '@nats-io/transport-node'
import type { NatsConnection } from '@nats-io/nats-core'
import { builtinJobTypes } from '../jobs/index.js'
import {
  encode,
  generateIdentity,
  isErrorReply,
  seal,
  LIMITS,
  randomId,
  sha256Hex,
  subjectsFor,
  type Identity,
  type Subjects,
  type UnitPayload,
} from '../shared/index.js'
import { trustedKeysFrom, verifyUnit, type CoordinatorClient } from '../worker/index.js'
import { startCluster, waitUntil, type Cluster } from './helpers/cluster.js'
import {
  computeOutput,
  flipBit,
  PRIMES,
  rawRequest,
  resultPayload,
  type ResultFields,
} from './helpers/protocol-fixtures.js'
import { rawVolunteer } from './helpers/volunteer.js'
import { useServices, asCoordinator } from './helpers/services.js'
import type { ParamsOf } from '../client/index.js'

const services = useServices(test)

interface FakeWorker {
  identity: Identity
  /** Its own volunteer connection: replies come only to its inbox. */
  nats: NatsConnection
  client: CoordinatorClient
}

interface Setup {
  cluster: Cluster
  nc: NatsConnection
  subjects: Subjects
  jobId: string
  worker(): Promise<FakeWorker>
  /** Ask for one unit as `w` and verify it as a worker would. */
  lease(w: FakeWorker): Promise<UnitPayload>
  /** Ask for `n` units in one grant as `w`, verify each, in unit order. */
  leaseMany(w: FakeWorker, n: number): Promise<UnitPayload[]>
}

/** A cluster with one coordinator and one planned `primes` job (default: one unit), quorum 2. */
async function setup(t: ExecutionContext, params: ParamsOf<'primes'> = { to: 100_000 }): Promise<Setup> {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const nc = await connect(asCoordinator(services()))
  t.teardown(() => nc.close())
  const subjects = subjectsFor(cluster.subjectPrefix)
  const job = await cluster.api.submit({ type: 'primes', params, redundancy: { quorum: 2 } })
  await waitUntil('the job to be planned', async () => (await cluster.api.job(job.id)).units.planned, 30_000)
  const trusted = trustedKeysFrom([{ keyId: cluster.identity.keyId, publicKey: cluster.identity.publicKey }])
  const leaseMany = async (w: FakeWorker, n: number): Promise<UnitPayload[]> => {
    const grant = await w.client.requestWork(n, [PRIMES])
    t.is(grant.units.length, n, `${n} units granted`)
    const init = { trusted, self: w.identity.id, jobTypes: builtinJobTypes, now: Date.now() }
    const units = await Promise.all(grant.units.map((u) => verifyUnit(u, init)))
    for (const unit of units) t.is(unit.jobId, job.id)
    return units.sort((a, b) => (a.unitId < b.unitId ? -1 : 1))
  }
  return {
    cluster,
    nc,
    subjects,
    jobId: job.id,
    worker: () => rawVolunteer(t, cluster, { timeoutMs: 5_000 }),
    async lease(w) {
      const [unit] = await leaseMany(w, 1)
      return unit!
    },
    leaseMany,
  }
}

/** The result an honest worker would send for `unit`. */
async function honestResult(unit: UnitPayload): Promise<ResultFields> {
  const { output, digest } = await computeOutput(unit.kind, unit.input)
  return { replicaId: unit.replicaId, unitId: unit.unitId, jobId: unit.jobId, digest, output, computeMs: 3 }
}

test('result checks - a result with a bad signature gets an error reply and is not stored', async (t) => {
  const s = await setup(t)
  const coordinator = s.cluster.coordinators[0]!
  const me = await s.worker()
  const unit = await s.lease(me)
  const fields = await honestResult(unit)
  const stranger = await generateIdentity(true)
  const good = await seal('result', resultPayload(me.identity, fields), me.identity)

  const forgeries = {
    'one bit of the signature flipped': { ...good, sig: flipBit(good.sig) },
    'one bit of the body flipped': { ...good, body: flipBit(good.body) },
    'signer replaced by another key': { ...good, signer: stranger.publicKey },
    'body re-encoded with another digest': {
      ...good,
      body: encode(resultPayload(me.identity, { ...fields, digest: await sha256Hex(encode({ count: 1 })) })),
    },
  }
  for (const [what, envelope] of Object.entries(forgeries)) {
    const before = coordinator.counters.malformed
    const reply = await rawRequest(s.nc, s.subjects.resultSubmit, encode(envelope))
    t.true(isErrorReply(reply), `${what}: ${JSON.stringify(reply)}`)
    t.like(reply, { type: 'error', code: 'bad-signature' }, what)
    t.is(coordinator.counters.malformed, before + 1, what)
  }

  // Correctly signed by another key, but claiming to come from the worker that holds the lease.
  // Sent from the stranger's own connection: replies go only to the signer's inbox.
  const impostor = await seal('result', resultPayload(me.identity, fields), stranger)
  const { nats: strangerNc } = await rawVolunteer(t, s.cluster, { identity: stranger })
  const before = coordinator.counters.malformed
  const reply = await rawRequest(strangerNc, s.subjects.resultSubmit, encode(impostor))
  t.like(reply, { type: 'error', code: 'bad-request' })
  t.regex((reply as { message: string }).message, /worker does not match the envelope signer/)
  t.is(coordinator.counters.malformed, before + 1)

  // Nothing was stored: the replica is still leased to the worker, no results, no credit.
  t.like(await coordinator.store.replicaState(unit.replicaId), { state: 'leased', worker: me.identity.id })
  t.deepEqual(await coordinator.store.unitResults(unit.unitId), [])
  t.is((await coordinator.store.workerStats(me.identity.id)).results, 0)
  t.is((await coordinator.store.workerStats(stranger.id)).results, 0)
  t.like(coordinator.counters, { resultsAccepted: 0, resultsRejected: 0, resultsDuplicate: 0, malformed: 5 })

  // The lease survived: the honest result is still accepted.
  t.like(await me.client.submitResult(fields), { status: 'accepted' })
  t.is((await coordinator.store.replicaState(unit.replicaId))['state'], 'done')
})

test('result checks - a result for a replica leased to another worker is rejected', async (t) => {
  const s = await setup(t)
  const coordinator = s.cluster.coordinators[0]!
  const a = await s.worker()
  const b = await s.worker()
  const unitA = await s.lease(a)
  const unitB = await s.lease(b)
  t.is(unitA.unitId, unitB.unitId, 'both replicas of the one unit')
  t.not(unitA.replicaId, unitB.replicaId)

  // B submits a correct result, signed by B, for A's replica.
  const ack = await b.client.submitResult(await honestResult(unitA))
  t.is(ack.status, 'rejected')
  t.regex(ack.reason ?? '', /not leased/)
  t.like(coordinator.counters, { resultsRejected: 1, resultsAccepted: 0, malformed: 0 })
  t.like(await coordinator.store.replicaState(unitA.replicaId), { state: 'leased', worker: a.identity.id })
  t.like(await coordinator.store.replicaState(unitB.replicaId), { state: 'leased', worker: b.identity.id })
  t.deepEqual(await coordinator.store.unitResults(unitA.unitId), [])
  t.is((await coordinator.store.workerStats(b.identity.id)).results, 0)

  // A stranger who never leased anything fares no better.
  const c = await s.worker()
  t.like(await c.client.submitResult(await honestResult(unitB)), { status: 'rejected' })

  // Both rightful workers are still accepted, and their agreement validates the job.
  t.like(await a.client.submitResult(await honestResult(unitA)), { status: 'accepted' })
  t.like(await b.client.submitResult(await honestResult(unitB)), { status: 'accepted' })
  await waitUntil('the job to complete', async () => (await s.cluster.api.job(s.jobId)).state === 'completed')
  t.like(await s.cluster.api.result(s.jobId), { result: { count: 9592, from: 0, to: 100_000 } })
})

test('result checks - a duplicate result is acknowledged as duplicate and counted once', async (t) => {
  const s = await setup(t)
  const coordinator = s.cluster.coordinators[0]!
  const me = await s.worker()
  const unit = await s.lease(me)
  const fields = await honestResult(unit)

  t.like(await me.client.submitResult(fields), { status: 'accepted' })
  t.like(await me.client.submitResult(fields), { status: 'duplicate' })
  // Replaying one signed message, twice, gives a duplicate each time.
  const bytes = encode(await seal('result', resultPayload(me.identity, fields), me.identity))
  for (let i = 0; i < 2; i++) {
    t.like(await rawRequest(me.nats, s.subjects.resultSubmit, bytes), {
      type: 'result.ack',
      status: 'duplicate',
    })
  }

  const results = await coordinator.store.unitResults(unit.unitId)
  t.deepEqual(results, [{ replicaId: unit.replicaId, digest: fields.digest, worker: me.identity.id }])
  t.like(coordinator.counters, { resultsAccepted: 1, resultsDuplicate: 3, resultsRejected: 0 })
  t.is((await coordinator.store.workerStats(me.identity.id)).results, 1)
  t.is((await coordinator.store.replicaState(unit.replicaId))['state'], 'done')
})

test('result checks - a result whose digest does not match its output is rejected', async (t) => {
  const s = await setup(t)
  const coordinator = s.cluster.coordinators[0]!
  const me = await s.worker()
  const unit = await s.lease(me)
  const fields = await honestResult(unit)
  const wrongDigest = await sha256Hex(encode({ count: 0 }))
  t.not(wrongDigest, fields.digest)

  const ack = await me.client.submitResult({ ...fields, digest: wrongDigest })
  t.is(ack.status, 'rejected')
  t.regex(ack.reason ?? '', /digest does not match/)
  t.like(coordinator.counters, { resultsRejected: 1, resultsAccepted: 0 })
  t.deepEqual(await coordinator.store.unitResults(unit.unitId), [])
  t.is((await coordinator.store.workerStats(me.identity.id)).results, 0)
  // The broken result cost the worker its lease; the replica went back to be reissued.
  t.not((await coordinator.store.replicaState(unit.replicaId))['state'], 'done')
  t.like(await me.client.submitResult(fields), { status: 'rejected' })

  // An output that is not what the job type produces is refused the same way.
  const other = await s.worker()
  const unit2 = await s.lease(other)
  const junk = encode({ count: 'many' })
  const ack2 = await other.client.submitResult({
    ...(await honestResult(unit2)),
    output: junk,
    digest: await sha256Hex(junk),
  })
  t.is(ack2.status, 'rejected')
  t.regex(ack2.reason ?? '', /malformed output/)
})

test('result checks - the primes output a test computes matches the job type run', async (t) => {
  const out: unknown = builtinJobTypes.get(PRIMES)!.run({ from: 0, to: 100_000 }, {})
  t.deepEqual(out, { count: 9592 })
  const { output, digest } = await computeOutput(PRIMES, { from: 0, to: 100_000 })
  t.deepEqual(output, encode(out))
  t.is(digest, await sha256Hex(encode(out)))
})

test('result checks - in a batch each result is checked on its own: bad ones are refused, the others stored', async (t) => {
  const s = await setup(t, { to: 400_000, unitSize: 100_000 })
  const coordinator = s.cluster.coordinators[0]!
  const a = await s.worker()
  const b = await s.worker()
  const ua = await s.leaseMany(a, 4)
  const ub = await s.leaseMany(b, 4)
  const honest = await Promise.all(ua.map(honestResult))
  const wrong = encode({ count: 1 })
  const batch = [
    honest[0]!,
    { ...honest[1]!, digest: await sha256Hex(encode({ count: 0 })) },
    // Well-formed and self-consistent, but a wrong answer: stored, and the quorum decides.
    { ...honest[2]!, output: wrong, digest: await sha256Hex(wrong) },
    { ...honest[3]!, unitId: ua[0]!.unitId },
  ]
  const acks = await a.client.submitResults(batch)
  t.like(acks, [
    { status: 'accepted' },
    { status: 'rejected', reason: 'digest does not match the output' },
    { status: 'accepted' },
    { status: 'rejected', reason: 'replica, unit and job ids do not belong together' },
  ])
  t.like(coordinator.counters, { resultsAccepted: 2, resultsRejected: 2 })
  // The refused results were not stored, and their leases went back to the queue.
  t.deepEqual(await coordinator.store.unitResults(ua[1]!.unitId), [])
  t.deepEqual(await coordinator.store.unitResults(ua[3]!.unitId), [])
  t.not((await coordinator.store.replicaState(ua[1]!.replicaId))['state'], 'leased')
  t.like(await coordinator.store.unitResults(ua[2]!.unitId), [{ digest: batch[2]!.digest }])

  // B's honest batch: every result stored; unit 0 agrees and is validated, unit 2 disagrees.
  const acksB = await b.client.submitResults(await Promise.all(ub.map(honestResult)))
  t.deepEqual(
    acksB.map((x) => x.status),
    ['accepted', 'accepted', 'accepted', 'accepted'],
  )
  await waitUntil(
    'unit 0 to be validated',
    async () => (await s.cluster.api.job(s.jobId)).units.validated >= 1,
  )
  t.is((await s.cluster.api.job(s.jobId)).units.validated, 1, 'only the unit both agreed on')
})

test('result checks - a batch with a bad signature, an impostor signer or out-of-bounds size stores nothing', async (t) => {
  const s = await setup(t, { to: 200_000, unitSize: 100_000 })
  const coordinator = s.cluster.coordinators[0]!
  const me = await s.worker()
  const units = await s.leaseMany(me, 2)
  const results = await Promise.all(units.map(honestResult))
  const payload = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
    type: 'result.batch',
    v: 1,
    results,
    worker: me.identity.id,
    at: Date.now(),
    nonce: randomId(),
    ...over,
  })
  const good = await seal('result.batch', payload(), me.identity)
  const flipped = await rawRequest(
    me.nats,
    s.subjects.resultSubmit,
    encode({ ...good, sig: flipBit(good.sig) }),
  )
  t.like(flipped, { type: 'error', code: 'bad-signature' })

  const stranger = await generateIdentity(true)
  const { nats: strangerNc } = await rawVolunteer(t, s.cluster, { identity: stranger })
  const impostor = await rawRequest(
    strangerNc,
    s.subjects.resultSubmit,
    encode(await seal('result.batch', payload(), stranger)),
  )
  t.like(impostor, { type: 'error', code: 'bad-request' })
  t.regex((impostor as { message: string }).message, /worker does not match the envelope signer/)

  const tooMany = Array.from({ length: LIMITS.maxBatchResults + 1 }, () => results[0]!)
  const big = await rawRequest(
    me.nats,
    s.subjects.resultSubmit,
    encode(await seal('result.batch', payload({ results: tooMany }), me.identity)),
  )
  t.regex((big as { message: string }).message, /results has more than 64 items/)
  const empty = await rawRequest(
    me.nats,
    s.subjects.resultSubmit,
    encode(await seal('result.batch', payload({ results: [] }), me.identity)),
  )
  t.regex((empty as { message: string }).message, /results must not be empty/)

  for (const u of units) t.deepEqual(await coordinator.store.unitResults(u.unitId), [])
  t.like(coordinator.counters, { resultsAccepted: 0, malformed: 4 })

  // The same result twice in one batch: stored once, the second is a duplicate.
  const acks = await me.client.submitResults([results[0]!, results[0]!, results[1]!])
  t.deepEqual(
    acks.map((x) => x.status),
    ['accepted', 'duplicate', 'accepted'],
  )
})
