// Lease claims: a worker takes over leases a peer signed over to it. A real coordinator and raw
// worker identities talking NATS: the claimant gets the unit signed for it and its result counts,
// the giver loses the lease; replayed, expired, forged or misaddressed transfers are refused; a
// claimant that holds another replica of the unit is refused, the lease stays with the giver, and
// is leasable at once when the giver hands it back.
import test from 'ava'
import type { NatsConnection } from '@nats-io/nats-core'
import {
  decode,
  encode,
  equalBytes,
  parseLeaseClaimed,
  openUnit,
  parseUnitPayload,
  PEER_LIMITS,
  seal,
  subjectsFor,
  type Identity,
  type SignedEnvelope,
  type UnitPayload,
} from '../shared/index.js'
import { createCoordinatorClient } from '../worker/index.js'
import { startCluster, waitForJob, waitUntil, type Cluster } from './helpers/cluster.js'
import {
  computeOutput,
  flipBit,
  rawRequest,
  sealTransfer,
  sealWorkerRequest,
} from './helpers/protocol-fixtures.js'
import { useServices } from './helpers/services.js'
import { rawVolunteer } from './helpers/volunteer.js'

const services = useServices(test)

type Teardown = { teardown(fn: () => unknown): void }

async function cluster(t: Teardown, leaseMs = 60_000): Promise<Cluster> {
  // No hold on reissued replicas: the workers here are new identities with no validated work.
  const c = await startCluster({ services: services(), tuning: { leaseMs, reissueHoldMs: 0 } })
  t.teardown(() => c.stop())
  return c
}

interface RawWorker {
  identity: Identity
  nats: NatsConnection
  client: ReturnType<typeof createCoordinatorClient>
  /** Send a `lease.claim` envelope and return the decoded reply. */
  claim(envelope: SignedEnvelope): Promise<Record<string, unknown>>
  /** A claim of `transfer`, signed by this worker. */
  sealClaim(transfer: SignedEnvelope, over?: Record<string, unknown>): Promise<SignedEnvelope>
}

async function worker(t: Teardown, c: Cluster): Promise<RawWorker> {
  const volunteer = await rawVolunteer(t, c, { timeoutMs: 3_000 })
  const { identity, nats } = volunteer
  const subjects = subjectsFor(c.subjectPrefix)
  return {
    ...volunteer,
    claim: async (envelope) =>
      (await rawRequest(nats, subjects.leaseClaim, encode(envelope))) as Record<string, unknown>,
    sealClaim: (transfer, over = {}) => sealWorkerRequest('lease.claim', identity, { transfer }, over),
  }
}

/** Ask until the coordinator grants one unit (the job is planned in the background). */
async function leaseOne(w: RawWorker): Promise<UnitPayload> {
  let unit: UnitPayload | undefined
  await waitUntil('a unit granted', async () => {
    const g = await w.client.requestWork(1, ['primes@1'], [])
    if (g.units[0] !== undefined) unit = parseUnitPayload(await openUnit(g.units[0]))
    return unit !== undefined
  })
  return unit!
}

const oneUnit = (quorum: number) => ({
  type: 'primes',
  params: { to: 10_000, unitSize: 10_000 },
  redundancy: { quorum, maxReplicas: quorum + 1 },
})

test('lease claim - the claimant gets the unit signed for it, its result counts, the giver loses the lease', async (t) => {
  const c = await cluster(t)
  const [a, b] = [await worker(t, c), await worker(t, c)]
  const job = await c.api.submit(oneUnit(1))
  const unit = await leaseOne(a)
  const rid = unit.replicaId

  const claimed = parseLeaseClaimed(
    await b.claim(await b.sealClaim(await sealTransfer(a.identity, b.identity.id, [rid]))),
  )
  t.deepEqual(claimed.refused, [])
  t.is(claimed.units.length, 1)
  const trusted = (signer: Uint8Array) => equalBytes(signer, c.identity.publicKey)
  const resigned = parseUnitPayload(await openUnit(claimed.units[0]!, trusted))
  t.like(resigned, {
    replicaId: rid,
    unitId: unit.unitId,
    jobId: job.id,
    worker: b.identity.id,
    kid: c.identity.keyId,
  })
  t.true(resigned.expiresAt > Date.now())

  const store = c.coordinators[0]!.store
  t.like(await store.replicaState(rid), {
    state: 'leased',
    worker: b.identity.id,
    transferredFrom: a.identity.id,
    transfers: '1',
  })
  t.deepEqual((await a.client.renew([rid])).lost, [rid], 'the giver no longer holds it')
  const out = await computeOutput(resigned.kind, resigned.input)
  const fields = {
    replicaId: rid,
    unitId: unit.unitId,
    jobId: job.id,
    digest: out.digest,
    output: out.output,
    computeMs: 1,
  }
  t.like(await a.client.submitResult(fields), { status: 'rejected' })
  t.like(await b.client.submitResult(fields), { status: 'accepted' })
  const done = await waitForJob(c.api, job.id)
  t.is(done.state, 'completed')
  t.like((await c.api.result(job.id)).result, { count: 1229 })
  t.like(c.coordinators[0]!.counters, { leasesTransferred: 1, transfersRefused: 0 })
})

test('lease claim - replayed, expired, forged, misaddressed and non-holder transfers are refused', async (t) => {
  const c = await cluster(t)
  const [a, b, x] = [await worker(t, c), await worker(t, c), await worker(t, c)]
  await c.api.submit(oneUnit(1))
  const rid = (await leaseOne(a)).replicaId
  const store = c.coordinators[0]!.store
  const refused = async (reply: Record<string, unknown>, message: RegExp, code = 'bad-request') => {
    t.like(reply, { type: 'error', code })
    t.regex(String(reply['message']), message)
    t.is((await store.replicaState(rid))['worker'], a.identity.id, 'the lease stays with the giver')
  }
  const now = Date.now()
  const expired = await sealTransfer(a.identity, b.identity.id, [rid], { expiresAt: now - 1 })
  await refused(await b.claim(await b.sealClaim(expired)), /expired/)
  const tooLong = await sealTransfer(a.identity, b.identity.id, [rid], {
    expiresAt: now + 2 * PEER_LIMITS.transferTtlMs + 1_000,
  })
  await refused(await b.claim(await b.sealClaim(tooLong)), /at most/)
  // A transfer naming the holder but signed by someone else.
  const forged = await seal(
    'lease.transfer',
    decode((await sealTransfer(a.identity, b.identity.id, [rid])).body),
    x.identity,
  )
  await refused(await b.claim(await b.sealClaim(forged)), /does not match the envelope signer/)
  const toSelf = await sealTransfer(a.identity, a.identity.id, [rid])
  await refused(await a.claim(await a.sealClaim(toSelf)), /to itself/)
  const claim = await b.sealClaim(await sealTransfer(a.identity, b.identity.id, [rid]))
  await refused(await b.claim({ ...claim, sig: flipBit(claim.sig) }), /signature/, 'bad-signature')

  // Claimed by a worker other than the addressee: refused, and the transfer stays good for `to`.
  const transfer = await sealTransfer(a.identity, b.identity.id, [rid])
  await refused(await x.claim(await x.sealClaim(transfer)), /addressed to another worker/)
  // Signed by a worker that does not hold the lease: nothing moves.
  const notHolder = parseLeaseClaimed(
    await b.claim(await b.sealClaim(await sealTransfer(x.identity, b.identity.id, [rid]))),
  )
  t.deepEqual(notHolder, { type: 'lease.claimed', v: 1, units: [], refused: [rid] })
  t.is((await store.replicaState(rid))['worker'], a.identity.id)

  const first = await b.sealClaim(transfer)
  t.is(parseLeaseClaimed(await b.claim(first)).units.length, 1)
  // The same claim again, and the same transfer in a new claim: both replays.
  t.regex(String((await b.claim(first))['message']), /request replayed/)
  t.regex(String((await b.claim(await b.sealClaim(transfer)))['message']), /transfer replayed/)
  t.is((await store.replicaState(rid))['transfers'], '1')
  t.like(c.coordinators[0]!.counters, { leasesTransferred: 1, transfersRefused: 1 })
  t.is(c.coordinators[0]!.counters.malformed, 8)
})

test('lease claim - a claimant holding another replica of the unit is refused, the giver keeps the lease and may hand it back', async (t) => {
  // Leases far longer than the test: only the hand-back can free the replica.
  const c = await cluster(t, 600_000)
  const [a, b, x] = [await worker(t, c), await worker(t, c), await worker(t, c)]
  await c.api.submit(oneUnit(2))
  const ua = await leaseOne(a)
  const ub = await leaseOne(b)
  t.is(ua.unitId, ub.unitId, 'quorum 2: both replicas of the one unit')
  const reply = await b.claim(
    await b.sealClaim(await sealTransfer(a.identity, b.identity.id, [ua.replicaId])),
  )
  t.deepEqual(parseLeaseClaimed(reply), { type: 'lease.claimed', v: 1, units: [], refused: [ua.replicaId] })
  const store = c.coordinators[0]!.store
  // The claimant cannot make the giver lose its lease by asking for a unit it holds.
  t.like(await store.replicaState(ua.replicaId), { state: 'leased', worker: a.identity.id })
  t.deepEqual((await a.client.renew([ua.replicaId])).lost, [])
  // The giver hands it back; a third worker gets a replacement replica at its first request.
  t.like(await a.client.release([ua.replicaId], 'no peer took it'), { released: 1 })
  const grant = await x.client.requestWork(1, ['primes@1'], [])
  t.is(grant.units.length, 1)
  const ux = parseUnitPayload(await openUnit(grant.units[0]!))
  t.is(ux.unitId, ua.unitId)
  t.not(ux.replicaId, ua.replicaId)
  t.like(c.coordinators[0]!.counters, { leasesTransferred: 0, transfersRefused: 1, leasesReleased: 1 })
})
