// Replica placement (docs/security.md, "Replica placement"): a unit's replicas never go to two
// identities of one owner or of one (non-exempt) network, they are picked at random within a
// priority band, and they are spread out in time. The attackers sign up through the real endpoint
// (their network set by a trusted proxy's X-Forwarded-For) and speak the protocol themselves.
import test, { type ExecutionContext } from 'ava'
import {
  createClientNetworkRules,
  DEFAULT_EXEMPT_NETWORKS,
  DEFAULT_TUNING,
  type Store,
} from '../coordinator/index.js'
import {
  encode,
  generateIdentity,
  open,
  ownerLink,
  parseLeaseClaimed,
  openUnit,
  parseUnitPayload,
  powPrefix,
  seal,
  sha256Hex,
  signupRequest,
  solvePow,
  subjectsFor,
  type Identity,
  type SignedEnvelope,
  type SignupPayload,
  type UnitPayload,
} from '../shared/index.js'
import { createCoordinatorClient, signUp, SignupError, type CoordinatorClient } from '../worker/index.js'
import { spawnCohort, startCluster, waitForJob, waitUntil, type Cluster } from './helpers/cluster.js'
import {
  computeOutput,
  PRIMES,
  rawRequest,
  sealTransfer,
  sealWorkerRequest,
} from './helpers/protocol-fixtures.js'
import { useServices } from './helpers/services.js'
import { connectVolunteer } from './helpers/volunteer.js'
import { createUser } from '@nats-io/nkeys'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { SubmitRequest } from '../client/index.js'

const services = useServices(test)

/** Sign-ups from 127.0.0.1 may name the client's address in X-Forwarded-For, as a reverse proxy does. */
const BEHIND_PROXY = { trustedProxies: ['127.0.0.0/8', '::1/128'] }

/** 20 units of `primes` below 200,000 (17,984 primes), quorum 2. */
const TWENTY = {
  type: 'primes',
  params: { to: 200_000, unitSize: 10_000 },
  redundancy: { quorum: 2, maxReplicas: 4 },
}
const UNITS = 20
const PRIMES_BELOW_200K = 17_984

interface Volunteer {
  identity: Identity
  client: CoordinatorClient
  /** Claims the leases `transfer` (signed by their holder) gives this volunteer; the decoded reply. */
  claim(transfer: SignedEnvelope): Promise<unknown>
}

/** A fetch that says, as a trusted proxy would, that the request came from `address`. */
function forwardedFrom(address: string): typeof fetch {
  return (input, init) => {
    const headers = new Headers(init?.headers)
    headers.set('X-Forwarded-For', address)
    return fetch(input, { ...init, headers })
  }
}

/** A new identity signed up through the real endpoint (linked to `owner`, from `from`), connected. */
async function volunteer(
  t: ExecutionContext,
  cluster: Cluster,
  opts: { owner?: Identity; from?: string } = {},
): Promise<Volunteer> {
  const identity = await generateIdentity(true)
  const nats = await connectVolunteer(cluster.volunteerAccess, identity, {
    name: 'attacker',
    signup: {
      ...(opts.owner === undefined ? {} : { owner: opts.owner }),
      ...(opts.from === undefined ? {} : { fetch: forwardedFrom(opts.from) }),
    },
  })
  t.teardown(() => nats.close())
  const subjects = subjectsFor(cluster.subjectPrefix)
  const client = createCoordinatorClient({ nats, identity, subjects, timeoutMs: 10_000 })
  const claim = async (transfer: SignedEnvelope): Promise<unknown> =>
    rawRequest(
      nats,
      subjects.leaseClaim,
      encode(await sealWorkerRequest('lease.claim', identity, { transfer })),
    )
  return { identity, client, claim }
}

const units = async (grant: { units: Parameters<typeof open>[0][] }): Promise<UnitPayload[]> =>
  Promise.all(grant.units.map(async (u) => parseUnitPayload(await openUnit(u))))

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** A result for `unit`: the true one, or a consistent forgery (one prime more) that colluders agree on. */
async function answer(unit: UnitPayload, forge: boolean) {
  const honest = await computeOutput(unit.kind, unit.input)
  const output = forge ? encode({ count: (honest.value as { count: number }).count + 1 }) : honest.output
  return {
    replicaId: unit.replicaId,
    unitId: unit.unitId,
    jobId: unit.jobId,
    digest: forge ? await sha256Hex(output) : honest.digest,
    output,
    computeMs: 1,
  }
}

/**
 * The attack: `pair` ask for work back to back, as fast as the rate limit lets them, and answer each
 * unit at once (forged when `forge`), until a whole round gets nothing. Returns how many units each
 * member of the pair got.
 */
async function drain(pair: Volunteer[], forge: boolean): Promise<number[]> {
  const got = pair.map(() => 0)
  let idle = 0
  while (idle < pair.length) {
    for (const [i, v] of pair.entries()) {
      const grant = await v.client.requestWork(4, [PRIMES])
      if (grant.limit?.by === 'rate') {
        // Out of requests for now: ask again as soon as allowed.
        await pause(grant.retryAfterMs)
        continue
      }
      const leased = await units(grant)
      if (leased.length === 0) {
        idle++
        continue
      }
      idle = 0
      got[i] = (got[i] ?? 0) + leased.length
      for (const u of leased) await v.client.submitResult(await answer(u, forge))
    }
  }
  return got
}

/** Every identity any replica of each unit of a job went to, read from Redis through the store. */
async function replicaHolders(store: Store, jobId: string, total: number): Promise<Set<string>[]> {
  const out: Set<string>[] = []
  for (let i = 0; i < total; i++) {
    const holders = new Set<string>()
    for (let r = 1; ; r++) {
      const replica = await store.replicaState(`${jobId}:${i}:r${r}`)
      if (replica['unitId'] === undefined) break
      if (replica['worker'] !== undefined) holders.add(replica['worker'])
    }
    out.push(holders)
  }
  return out
}

/** Units of which both members of the pair got a replica. */
const both = (holders: Set<string>[], a: Volunteer, b: Volunteer): number =>
  holders.filter((h) => h.has(a.identity.id) && h.has(b.identity.id)).length

async function planned(cluster: Cluster, body: SubmitRequest): Promise<string> {
  const job = await cluster.api.submit(body)
  await waitUntil('the job to be planned', async () => (await cluster.api.job(job.id)).units.planned)
  return job.id
}

test('placement - a Sybil pair (two identities of one owner) asking back to back never gets both replicas of a unit', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const owner = await generateIdentity(true)
  // Both on loopback, an exempt network: only the owner link separates them from strangers.
  const [a, b] = [await volunteer(t, cluster, { owner }), await volunteer(t, cluster, { owner })]
  const store = cluster.coordinators[0]!.store
  t.is((await store.identityAttributes(a.identity.id)).owner, owner.id)
  t.is((await store.identityAttributes(b.identity.id)).owner, owner.id)
  const jobId = await planned(cluster, TWENTY)
  // Alone with the job, the pair takes all it may: without placement, both replicas of every unit.
  const got = await drain([a, b], false)
  t.is(got[0]! + got[1]!, UNITS, 'one replica of each unit went to the pair')
  // Honest workers finish the job.
  await cluster.addWorker()
  await cluster.addWorker()
  const job = await waitForJob(cluster.api, jobId)
  t.is(job.state, 'completed')
  const holders = await replicaHolders(store, jobId, UNITS)
  t.is(both(holders, a, b), 0, 'no unit had replicas at both identities of the owner')
})

test('placement - a pair on one public network never gets both replicas of a unit; identities on different networks do', async (t) => {
  const cluster = await startCluster({
    services: services(),
    tuning: { ...BEHIND_PROXY, placementExemptNetworks: [] },
  })
  t.teardown(() => cluster.stop())
  const a = await volunteer(t, cluster, { from: '203.0.113.7' })
  const b = await volunteer(t, cluster, { from: '203.0.113.200' })
  const c = await volunteer(t, cluster, { from: '198.51.100.4' })
  const store = cluster.coordinators[0]!.store
  t.like(await store.identityAttributes(a.identity.id), { owner: a.identity.id, network: '4:203.0.113' })
  t.like(await store.identityAttributes(b.identity.id), { owner: b.identity.id, network: '4:203.0.113' })
  t.like(await store.identityAttributes(c.identity.id), { network: '4:198.51.100' })

  const first = await planned(cluster, TWENTY)
  const got = await drain([a, b], false)
  t.is(got[0]! + got[1]!, UNITS, 'one replica of each unit went to the pair on one network')
  t.is(both(await replicaHolders(store, first, UNITS), a, b), 0)
  await cluster.api.cancel(first)

  // Two identities on different networks are independent: alone with a job, they share every unit.
  const second = await planned(cluster, TWENTY)
  t.deepEqual(await drain([a, c], false), [UNITS, UNITS])
  t.is(both(await replicaHolders(store, second, UNITS), a, c), UNITS)
})

test('placement - the attack: two self-made keys on one machine asking back to back get both replicas of no unit, and the forgery is never accepted', async (t) => {
  // Defaults, behind a proxy: the attackers' machine has a public address, honest workers are local.
  const cluster = await startCluster({ services: services(), tuning: BEHIND_PROXY })
  t.teardown(() => cluster.stop())
  const machine = '203.0.113.50'
  const [a, b] = [
    await volunteer(t, cluster, { from: machine }),
    await volunteer(t, cluster, { from: machine }),
  ]
  const jobId = await planned(cluster, TWENTY)
  const got = await drain([a, b], true)
  await cluster.addWorker()
  await cluster.addWorker()
  const job = await waitForJob(cluster.api, jobId)
  const holders = await replicaHolders(cluster.coordinators[0]!.store, jobId, UNITS)
  const result = job.state === 'completed' ? (await cluster.api.result(jobId)).result : job.state
  t.log(
    `units with both replicas at the attackers: ${both(holders, a, b)} of ${UNITS}; result ${JSON.stringify(result)}`,
  )
  t.is(both(holders, a, b), 0, 'units with both replicas at the attackers')
  t.like(result, { count: PRIMES_BELOW_200K })
  t.is(got[0]! + got[1]!, UNITS, 'one replica of each unit went to the attackers')
})

test("placement - a Sybil cannot steal the other replica of its sibling's unit from an honest peer; the peer keeps its lease", async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const owner = await generateIdentity(true)
  const [a, b] = [await volunteer(t, cluster, { owner }), await volunteer(t, cluster, { owner })]
  const [honest, stranger] = [await volunteer(t, cluster), await volunteer(t, cluster)]
  await planned(cluster, { type: 'primes', params: { to: 1000, unitSize: 1000 }, redundancy: { quorum: 2 } })
  const [ua] = await units(await a.client.requestWork(1, [PRIMES]))
  const [uh] = await units(await honest.client.requestWork(1, [PRIMES]))
  t.is(ua?.unitId, uh?.unitId, 'both replicas of the one unit are out')
  // The honest peer gives its replica to b, which asked (a steal): refused, and it stays with the peer.
  const refused = parseLeaseClaimed(
    await b.claim(await sealTransfer(honest.identity, b.identity.id, [uh!.replicaId])),
  )
  t.deepEqual(refused.refused, [uh!.replicaId])
  t.is(refused.units.length, 0)
  const store = cluster.coordinators[0]!.store
  t.like(await store.replicaState(uh!.replicaId), { state: 'leased', worker: honest.identity.id })
  t.is((await store.workerStats(honest.identity.id)).released, 0, 'nothing charged to the honest peer')
  // To an independent identity, the same transfer goes through.
  const moved = parseLeaseClaimed(
    await stranger.claim(await sealTransfer(honest.identity, stranger.identity.id, [uh!.replicaId])),
  )
  t.is(moved.units.length, 1)
  t.like(await store.replicaState(uh!.replicaId), { state: 'leased', worker: stranger.identity.id })
})

test('placement - the first unit a new identity gets is picked at random, not the head of the queue', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  // 64 units of one replica each, queued in index order.
  const total = 64
  const jobId = await planned(cluster, {
    type: 'primes',
    params: { to: total * 1000, unitSize: 1000 },
    redundancy: { quorum: 1, maxReplicas: 1 },
  })
  // Each of 6 new identities takes one unit. In queue order each would get the head: the lowest
  // index not taken yet. Picked at random among the c units left, it is the head with probability
  // 1/c, so all 6 are heads with probability 1/(64·63·62·61·60·59) ≈ 1.8e-11.
  const taken = new Set<number>()
  let heads = 0
  for (let i = 0; i < 6; i++) {
    const v = await volunteer(t, cluster)
    const [unit] = await units(await v.client.requestWork(1, [PRIMES]))
    t.truthy(unit)
    t.is(unit!.jobId, jobId)
    const index = Number(unit!.unitId.slice(jobId.length + 1))
    let head = 0
    while (taken.has(head)) head++
    if (index === head) heads++
    taken.add(index)
  }
  t.true(heads < 6, `all ${heads} first units were the head of the queue`)
})

test('placement - the random pick stays within the highest priority band', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const one = (priority: number, n: number) => ({
    type: 'primes',
    params: { to: n * 1000, unitSize: 1000 },
    redundancy: { quorum: 1, maxReplicas: 1 },
    priority,
  })
  const low = await planned(cluster, one(0, 32))
  const high = await planned(cluster, one(10, 3))
  const v = await volunteer(t, cluster)
  const first = await units(await v.client.requestWork(3, [PRIMES]))
  t.deepEqual(
    first.map((u) => u.jobId),
    [high, high, high],
  )
  const next = await units(await v.client.requestWork(1, [PRIMES]))
  t.is(next[0]?.jobId, low)
})

test("placement - a unit's replicas are spread out in time, not handed out back to back", async (t) => {
  const spread = 400
  // Strangers: the operator's own (vouched) hosts are not held back by the spread (next test).
  const cluster = await startCluster({
    services: services(),
    tuning: { replicaSpreadMs: spread },
    vouch: false,
  })
  t.teardown(() => cluster.stop())
  const jobId = await planned(cluster, {
    type: 'primes',
    params: { to: 1000, unitSize: 1000 },
    redundancy: { quorum: 2, maxReplicas: 2 },
  })
  const [a, b] = [await volunteer(t, cluster), await volunteer(t, cluster)]
  const [ua] = await units(await a.client.requestWork(1, [PRIMES]))
  t.is(ua?.jobId, jobId)
  let ub: UnitPayload | undefined
  let waits = 0
  await waitUntil('the second replica granted', async () => {
    const grant = await b.client.requestWork(1, [PRIMES])
    ;[ub] = await units(grant)
    if (ub === undefined && grant.limit?.by !== 'rate') {
      // The grant says when the held-back replica is free; never later than the spread.
      t.true(grant.retryAfterMs > 0 && grant.retryAfterMs <= spread, `retry after ${grant.retryAfterMs} ms`)
      waits++
    }
    return ub !== undefined
  })
  t.is(ub!.unitId, ua!.unitId)
  const store = cluster.coordinators[0]!.store
  const leasedAt = async (u: UnitPayload) => Number((await store.replicaState(u.replicaId))['leasedAt'])
  const gap = (await leasedAt(ub!)) - (await leasedAt(ua!))
  t.true(gap >= spread / 2, `second replica leased ${gap} ms after the first (${waits} empty grants)`)
})

test("placement - the operator's own hosts are not held back by the spread and hold the full lease cap", async (t) => {
  const cluster = await startCluster({
    services: services(),
    tuning: { replicaSpreadMs: 600_000, leaseCapBase: 4 },
    vouch: false,
  })
  t.teardown(() => cluster.stop())
  await planned(cluster, {
    type: 'primes',
    params: { to: 10_000, unitSize: 1000 },
    redundancy: { quorum: 2, maxReplicas: 2 },
  })
  const [a, b, host] = [await volunteer(t, cluster), await volunteer(t, cluster), await volunteer(t, cluster)]
  await cluster.coordinators[0]!.store.vouch([host.identity.id])
  const first = await units(await a.client.requestWork(10, [PRIMES]))
  t.is(first.length, 4, 'a new identity holds its base cap')
  // Another new identity gets only units nobody holds: the others wait out the spread.
  const second = await units(await b.client.requestWork(10, [PRIMES]))
  t.is(second.length, 4)
  t.false(second.some((u) => first.some((f) => f.unitId === u.unitId)))
  // The vouched host takes the second replicas at once, and more than the base cap.
  const hosted = await units(await host.client.requestWork(10, [PRIMES]))
  t.is(hosted.length, 10)
  const taken = new Set([...first, ...second].map((u) => u.unitId))
  t.is(hosted.filter((u) => taken.has(u.unitId)).length, 8)
})

test('placement - ordinary jobs on 2 local honest workers complete at quorum 2 under the default placement', async (t) => {
  // The defaults of a deployment: loopback exempt, a spread between replicas of a unit.
  const cluster = await startCluster({
    services: services(),
    tuning: { replicaSpreadMs: DEFAULT_TUNING.replicaSpreadMs },
  })
  t.teardown(() => cluster.stop())
  const [w1, w2] = [await cluster.addWorker(), await cluster.addWorker()]
  const started = Date.now()
  const job = await cluster.api.submit({ type: 'primes', params: { to: 100_000, unitSize: 10_000 } })
  const done = await waitForJob(cluster.api, job.id)
  t.log(`10 units at quorum 2 completed in ${Date.now() - started} ms`)
  t.is(done.state, 'completed')
  t.like(await cluster.api.result(job.id), { result: { count: 9592 } })
  const holders = await replicaHolders(cluster.coordinators[0]!.store, job.id, 10)
  for (const h of holders) t.deepEqual([...h].sort(), [w1.identity.id, w2.identity.id].sort())
})

/** A sign-up built by hand, with payload fields `extra` (an owner link, possibly forged). */
async function rawSignUp(
  coordinatorUrl: string,
  identity: Identity,
  extra: Partial<SignupPayload>,
): Promise<Response> {
  const challenge = (await (await fetch(`${coordinatorUrl}/v1/volunteers/challenge`)).json()) as {
    challenge: string
    bits: number
  }
  const natsKey = createUser().getPublicKey()
  const prefix = await powPrefix(challenge.challenge, identity.publicKey, natsKey)
  const { nonce } = await solvePow(prefix, challenge.bits, { timeoutMs: 60_000 })
  const payload = {
    type: 'volunteer.signup',
    v: 1,
    peerId: identity.id,
    natsKey,
    challenge: challenge.challenge,
    ...extra,
  }
  return fetch(`${coordinatorUrl}/v1/volunteers`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(signupRequest(await seal('volunteer.signup', payload, identity), nonce)),
  })
}

test("placement - an identity's owner needs the owner's signature and, once linked, never changes", async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const url = cluster.coordinators[0]!.url
  const store = cluster.coordinators[0]!.store
  const [owner, other, id] = [
    await generateIdentity(true),
    await generateIdentity(true),
    await generateIdentity(true),
  ]
  const natsKey = (): string => createUser().getPublicKey()
  // Nobody links an identity to an owner without the owner key: a signature over another identity,
  // or by another key, is refused.
  const forged = await ownerLink(owner, other.id)
  let r = await rawSignUp(url, id, forged)
  t.is(r.status, 422)
  t.regex(await r.text(), /ownerSig/)
  r = await rawSignUp(url, id, { owner: owner.id, ownerSig: (await ownerLink(other, id.id)).ownerSig })
  t.is(r.status, 422)
  t.is((await store.identityAttributes(id.id)).owner, id.id, 'refused sign-ups record nothing')
  // Unlinked, then linked once; signing up again without an owner keeps it.
  t.is((await signUp({ coordinatorUrl: url, identity: id, natsKey: natsKey() })).owner, id.id)
  t.is((await signUp({ coordinatorUrl: url, identity: id, natsKey: natsKey(), owner })).owner, owner.id)
  t.is((await signUp({ coordinatorUrl: url, identity: id, natsKey: natsKey() })).owner, owner.id)
  // Linked to another owner: refused, the first owner stays.
  const moved = await signUp({ coordinatorUrl: url, identity: id, natsKey: natsKey(), owner: other }).catch(
    (err: unknown) => err,
  )
  t.true(moved instanceof SignupError && moved.status === 422, String(moved))
  t.regex((moved as Error).message, /linked to the owner/)
  t.is((await store.identityAttributes(id.id)).owner, owner.id)
})

test('placement - networks: /24 in IPv4, /48 in IPv6, exempt ranges, and forwarded addresses only from trusted proxies', (t) => {
  const rules = createClientNetworkRules({
    trustedProxies: ['10.0.0.1/32'],
    exemptNetworks: DEFAULT_EXEMPT_NETWORKS,
  })
  t.is(rules.networkOf('203.0.113.77'), '4:203.0.113')
  t.is(rules.networkOf('::ffff:203.0.113.9'), '4:203.0.113')
  t.is(rules.networkOf('2001:db8:aa:1::5'), '6:2001:db8:aa')
  t.is(rules.networkOf('2001:0db8:00aa:ffff:1:2:3:4'), '6:2001:db8:aa')
  for (const exempt of ['127.0.0.1', '10.1.2.3', '172.20.0.9', '192.168.1.1', '::1', 'fd12:3456::1'])
    t.is(rules.networkOf(exempt), '', exempt)
  t.is(rules.networkOf('172.32.0.1'), '4:172.32.0')
  // A forwarded address counts only from a trusted proxy, and only up to the first untrusted hop.
  t.is(rules.clientAddress('203.0.113.5', '198.51.100.1'), '203.0.113.5')
  t.is(rules.clientAddress('10.0.0.1', '198.51.100.1'), '198.51.100.1')
  t.is(rules.clientAddress('10.0.0.1', '1.2.3.4, 198.51.100.1'), '198.51.100.1')
  t.is(rules.clientAddress('10.0.0.1', 'junk'), '10.0.0.1')
  t.is(rules.clientAddress('::ffff:10.0.0.1', '2001:db8::1'), '2001:db8::1')
})

test('cli - `cohort owner-key` makes an owner key; `cohort worker --owner-key-file` links the worker to it', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const dir = await mkdtemp(join(tmpdir(), 'cohort-owner-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const ownerFile = join(dir, 'owner.json')
  const made = spawnCohort(['owner-key', '--file', ownerFile])
  const line = await made.waitForLine(/owner key .*: owner [A-Za-z0-9_-]{43}$/)
  const ownerId = line.slice(-43)
  // A missing owner key file is an error, not a new owner.
  const missing = spawnCohort(
    cluster.workerArgs(join(dir, 'w0.json'), '--owner-key-file', join(dir, 'nope.json')),
  )
  t.teardown(() => missing.kill())
  await missing.waitForLine(/owner key file .* does not exist/)
  const keyFile = join(dir, 'w1.json')
  const worker = spawnCohort(cluster.workerArgs(keyFile, '--threads', '1', '--owner-key-file', ownerFile))
  t.teardown(() => worker.kill())
  await worker.waitForLine(/worker started/, 60_000)
  const id = (JSON.parse(await readFile(keyFile, 'utf8')) as { publicKey: string }).publicKey
  t.is((await cluster.coordinators[0]!.store.identityAttributes(id)).owner, ownerId)
})

test('owner - when one identity of an owner is caught, the owner and all its identities lose their credibility; its later identities are born caught', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const store = cluster.coordinators[0]!.store
  const owner = await generateIdentity(true)
  const [a, b] = [await volunteer(t, cluster, { owner }), await volunteer(t, cluster, { owner })]
  const stranger = await volunteer(t, cluster)
  await planned(cluster, TWENTY)
  t.true((await b.client.requestWork(1, [PRIMES])).units.length > 0, 'b gets work before')

  // The caught event, as DECIDE or a failed spot check raises it, for identity a alone.
  t.true(
    await store.markCaught(
      a.identity.id,
      'its result for unit x:0 disagreed with the accepted one',
      Date.now(),
    ),
  )
  for (const v of [a, b]) {
    t.truthy(await store.caught(v.identity.id), 'caught')
    t.is((await store.credibility(v.identity.id)).credibility, 0)
    await t.throwsAsync(v.client.requestWork(1, [PRIMES]), { message: /caught with a wrong result/ })
  }
  t.regex((await store.caught(b.identity.id))?.reason ?? '', /another identity of its owner was caught/)
  // b is backtracked like a: its leases are taken back (the backtracker's sweep of backtrack:due).
  await waitUntil(
    'b backtracked',
    async () => (await store.caught(b.identity.id))?.backtrackedAt !== undefined,
  )

  // A new identity linked to the caught owner is born caught; a stranger is untouched.
  const c = await volunteer(t, cluster, { owner })
  t.regex((await store.caught(c.identity.id))?.reason ?? '', /its owner was caught/)
  await t.throwsAsync(c.client.requestWork(1, [PRIMES]), { message: /caught with a wrong result/ })
  t.is(await store.caught(stranger.identity.id), undefined)
  t.true((await stranger.client.requestWork(1, [PRIMES])).units.length > 0)
})
