// Peers that abuse the exchange, played through the real protocol (real coordinator, Redis and NATS;
// the attacker is a volunteer connection of its own, the honest workers are daemons): a recorded
// handoff replayed at once and after its transfer expired gets nobody banned; a thief cannot pick its
// units nor get a second replica of a unit it held; a false handoff.result does not make the victim
// drop units; an announcer that does not serve what it announces does not stall a download; a flood
// of announcements from many identities does not grow the announcement table past its bound.
import test from 'ava'
import { connect } from '@nats-io/transport-node'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { knnDataset } from '../jobs/index.js'
import {
  announceSubject,
  CHUNK_BYTES,
  chunkCount,
  decode,
  encode,
  generateIdentity,
  manifestOf,
  open,
  parseEnvelope,
  parseLeaseTransfer,
  parsePeerMessage,
  openUnit,
  parseUnitPayload,
  PEER_LIMITS,
  PEER_MESSAGE_VERSION,
  peerSubject,
  randomBytes,
  randomId,
  seal,
  sha256Hex,
  subjectsFor,
  toHex,
  type PeerMessage,
  type SignedEnvelope,
  type UnitPayload,
} from '../shared/index.js'
import { createCoordinatorClient, createPeerOverlay, type Outgoing, type PeerState } from '../worker/index.js'
import {
  startCluster,
  testLogger,
  waitForJob,
  waitUntil,
  type Cluster,
  type TestWorker,
} from './helpers/cluster.js'
import { openUnits } from './helpers/protocol-fixtures.js'
import { gate, slow, type Gate } from './helpers/runners.js'
import { asCoordinator, useServices } from './helpers/services.js'
import { rawVolunteer } from './helpers/volunteer.js'
import { fileBody } from '../scripts/file-body.js'

const services = useServices(test, { websocket: false })

type Teardown = { teardown(fn: () => unknown): void }

/** Leases far longer than any test: a unit dropped by mistake would not come back in time. */
// Workers here hold more units than a new identity may (the lease cap): these tests are about what
// peers do with a full buffer.
const LONG_LEASES = { leaseMs: 600_000, leaseCapBase: 16 }

/** Resolves when `w` holds at least `n` units. */
function holding(w: TestWorker, n: number): Promise<void> {
  return waitUntil(`the worker holds ${n} units`, () => w.daemon.stats.held >= n)
}

/**
 * A victim that does not steal, runs one unit and holds at least eight more. Its units wait at a gate
 * until the test opens it (`busy.open()`), so none finishes early on a fast machine.
 */
async function busyVictim(cluster: Cluster): Promise<{ victim: TestWorker; busy: Gate }> {
  const busy = gate(0)
  const victim = await cluster.addWorker({
    threads: 1,
    bufferUnits: 16,
    wrap: busy.wrap,
    peers: { announceMs: 250, steal: false },
  })
  await holding(victim, 8)
  await waitUntil('the victim runs a unit', () => victim.daemon.stats.running === 1)
  return { victim, busy }
}

const quiet: PeerState = { threads: 1, running: 0, buffered: 0, free: 0, accepts: [], has: [] }

/** The attacker: a volunteer identity on a connection of its own, speaking the peer protocol raw. */
async function attacker(t: Teardown, cluster: Cluster, state: () => PeerState = () => quiet) {
  const { identity, nats } = await rawVolunteer(t, cluster, { name: 'attacker' })
  const subjects = subjectsFor(cluster.subjectPrefix)
  const overlay = createPeerOverlay({
    nats,
    identity,
    subjects,
    log: testLogger('attacker').log,
    announceMs: 200,
    state,
  })
  t.teardown(() => overlay.stop())
  const client = createCoordinatorClient({ nats, identity, subjects, timeoutMs: 3_000 })
  return { identity, nats, subjects, overlay, client }
}

/** Asks until the coordinator granted `n` units (the job is planned in the background). */
async function leaseUnits(client: ReturnType<typeof createCoordinatorClient>, n: number) {
  const units: { envelope: SignedEnvelope; unit: UnitPayload }[] = []
  await waitUntil(`${n} units granted`, async () => {
    const held = units.map((u) => u.unit.replicaId)
    const g = await client.requestWork(n - units.length, ['primes@1'], held)
    for (const envelope of g.units) units.push({ envelope, unit: parseUnitPayload(await openUnit(envelope)) })
    return units.length >= n
  })
  return units
}

/** Steal from `victim` as `thief`; returns the victim's answer (a handoff). */
async function stealFrom(
  thief: Awaited<ReturnType<typeof attacker>>,
  victim: TestWorker,
  extra: Record<string, unknown> = {},
): Promise<Extract<PeerMessage, { type: 'handoff' }>> {
  const body = { type: 'steal', want: PEER_LIMITS.maxTransfer, accepts: ['primes@1'], ...extra } as Outgoing
  const reply = await thief.overlay.request(victim.identity.id, body)
  if (reply.type !== 'handoff') throw new Error(`the victim answered ${reply.type}`)
  return reply
}

/** Resolves when `w`'s overlay has served `n` more messages than now. */
function served(w: TestWorker, n: number): Promise<void> {
  const target = w.daemon.peering.overlay.stats.served + n
  return waitUntil('the message was handled', () => w.daemon.peering.overlay.stats.served >= target)
}

test('replay - a handoff replayed at once and after its transfer expired gets nobody banned', async (t) => {
  const cluster = await startCluster({ services: services(), tuning: LONG_LEASES })
  t.teardown(() => cluster.stop())
  const subjects = subjectsFor(cluster.subjectPrefix)
  const giver = await cluster.addWorker({ threads: 1, bufferUnits: 10, wrap: slow(300) })
  const job = await cluster.api.submit({
    type: 'primes',
    params: { to: 11_000_000, unitSize: 1_000_000 },
    redundancy: { quorum: 1 },
  })
  await holding(giver, 11)
  const receiver = await cluster.addWorker({
    threads: 2,
    bufferUnits: 10,
    peers: { announceMs: 250, steal: false },
  })
  const toReceiver = peerSubject(subjects, receiver.identity.id)
  // The eavesdropper records what travels to the receiver.
  const tap = await connect(asCoordinator(services()))
  t.teardown(() => tap.close())
  const recorded: Uint8Array[] = []
  tap.subscribe(toReceiver, {
    callback: (_err, m) => {
      recorded.push(m.data)
    },
  })
  await tap.flush()
  await waitUntil('the giver sees room at the receiver', () =>
    giver.daemon.peering.overlay.peers().some((p) => p.id === receiver.identity.id && p.state.free > 0),
  )

  // The giver pauses: its unstarted units go to the receiver, which claims them.
  await giver.daemon.pause()
  t.true(giver.daemon.peering.exchange.stats.handedOff > 0)
  giver.daemon.resume()
  let handoff: Uint8Array | undefined
  let transfer: SignedEnvelope | undefined
  for (const data of recorded) {
    const msg = parsePeerMessage(await open(parseEnvelope(decode(data), 'peer', PEER_LIMITS.maxMessageBytes)))
    if (msg.type === 'handoff' && msg.transfer !== undefined) {
      handoff = data
      transfer = msg.transfer
    }
  }
  if (handoff === undefined || transfer === undefined) throw new Error('no handoff was recorded')
  const { expiresAt } = parseLeaseTransfer(await open(transfer))

  // The attacker sends the recorded handoff again, at once and once the transfer has expired.
  const mallory = await attacker(t, cluster)
  const overlay = receiver.daemon.peering.overlay
  const { refused, declined } = overlay.stats
  mallory.nats.publish(toReceiver, handoff)
  // Refused as a replay, or (had the receiver acted on it) declined when its claim failed.
  await waitUntil(
    'the replay was dealt with',
    () => overlay.stats.refused > refused || overlay.stats.declined > declined,
  )
  await waitUntil('the transfer expired', () => Date.now() > expiresAt + 1_000, PEER_LIMITS.transferTtlMs * 3)
  mallory.nats.publish(toReceiver, handoff)
  await waitUntil(
    'the late replay was dealt with',
    () => overlay.stats.refused > refused + 1 || overlay.stats.declined > declined + 1,
  )

  // Nobody was penalised, nothing was claimed twice, and the two still answer each other.
  t.false(overlay.isBanned(giver.identity.id))
  t.false(giver.daemon.peering.overlay.isBanned(receiver.identity.id))
  t.is(overlay.stats.penalties, 0)
  t.is(receiver.daemon.peering.exchange.stats.forgedUnits, 0)
  t.is(overlay.stats.replayed, 2, 'both replays refused as such')
  const ask: Outgoing = { type: 'chunk.get', hash: toHex(randomBytes(32)) }
  t.like(await overlay.request(giver.identity.id, ask), { type: 'peer.error', code: 'missing' })
  t.like(await giver.daemon.peering.overlay.request(receiver.identity.id, ask), {
    type: 'peer.error',
    code: 'missing',
  })
  const done = await waitForJob(cluster.api, job.id)
  t.is(done.state, 'completed')
  t.like((await cluster.api.result(job.id)).result, { count: 726_517 })
  t.is(cluster.coordinators[0]!.counters.leasesExpired, 0)
})

test('replies - a reply that does not name its request is refused, and the wait goes on', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const honest = await cluster.addWorker({ threads: 1, peers: { announceMs: 250, steal: false } })
  const mallory = await attacker(t, cluster)
  const { identity } = mallory
  const sealed = async (to: string, body: Record<string, unknown>): Promise<Uint8Array> =>
    encode(
      await seal(
        'peer',
        { v: PEER_MESSAGE_VERSION, worker: identity.id, at: Date.now(), nonce: randomId(), to, ...body },
        identity,
      ),
    )
  const bytes = randomBytes(100)
  const hash = await sha256Hex(bytes)
  // Asked for a chunk, the attacker answers; but first, someone with access to the requester's inbox
  // (here a privileged connection) slips in a reply of the attacker's to another request.
  const tap = await connect(asCoordinator(services()))
  t.teardown(() => tap.close())
  mallory.nats.subscribe(peerSubject(mallory.subjects, identity.id), {
    callback: (_err, m) => {
      void (async () => {
        const req = parsePeerMessage(await open(parseEnvelope(decode(m.data), 'peer', 64 * 1024)))
        const other = { type: 'peer.error', code: 'missing', message: 'gone', re: randomId() }
        tap.publish(m.reply!, await sealed(req.worker, other))
        await tap.flush()
        m.respond(await sealed(req.worker, { type: 'chunk', hash, bytes, re: req.nonce }))
      })()
    },
  })
  await mallory.nats.flush()
  const overlay = honest.daemon.peering.overlay
  const refused = overlay.stats.refused
  const reply = await overlay.request(identity.id, { type: 'chunk.get', hash })
  t.like(reply, { type: 'chunk', hash })
  t.is(overlay.stats.refused, refused + 1, 'the reply to another request was refused')

  // A reply sent to a peer as a request is not acted upon.
  const declined = overlay.stats.declined
  const asRequest = await sealed(honest.identity.id, { type: 'chunk.get', hash, re: randomId() })
  mallory.nats.publish(peerSubject(mallory.subjects, honest.identity.id), asRequest)
  await waitUntil('the honest peer refused it', () => overlay.stats.refused === refused + 2)
  t.is(overlay.stats.declined, declined)
  t.is(overlay.stats.served, 0)
  t.false(overlay.isBanned(identity.id))
})

test('replay - a handoff whose transfer expired on the way is refused, and its sender not blamed', async (t) => {
  const cluster = await startCluster({ services: services(), tuning: LONG_LEASES })
  t.teardown(() => cluster.stop())
  await cluster.api.submit({
    type: 'primes',
    params: { to: 2_000_000, unitSize: 1_000_000 },
    redundancy: { quorum: 1 },
  })
  // A volunteer with a real unit gives it away, and the handoff arrives after the transfer expired
  // (a slow network, or a replay the cache no longer remembers).
  const late = await attacker(t, cluster)
  const [granted] = await leaseUnits(late.client, 1)
  const receiver = await cluster.addWorker({ threads: 1, peers: { announceMs: 250, steal: false } })
  const at = Date.now() - PEER_LIMITS.transferTtlMs - 1_000
  const transfer = await seal(
    'lease.transfer',
    {
      type: 'lease.transfer',
      v: 1,
      worker: late.identity.id,
      at,
      nonce: randomId(),
      to: receiver.identity.id,
      replicaIds: [granted!.unit.replicaId],
      expiresAt: at + PEER_LIMITS.transferTtlMs,
    },
    late.identity,
  )
  const reply = await late.overlay.request(receiver.identity.id, {
    type: 'handoff',
    transfer,
    units: [granted!.envelope],
  })
  t.like(reply, { type: 'peer.error' })
  const overlay = receiver.daemon.peering.overlay
  t.false(overlay.isBanned(late.identity.id))
  t.is(overlay.stats.penalties, 0)
  t.is(receiver.daemon.peering.exchange.stats.offersRefused, 1)
  t.is(receiver.daemon.peering.exchange.stats.forgedUnits, 0)
  t.is(cluster.coordinators[0]!.counters.leasesTransferred, 0)
})

test('steal - the victim chooses, and a thief never gets a replica of a unit it holds or held', async (t) => {
  const cluster = await startCluster({ services: services(), tuning: LONG_LEASES })
  t.teardown(() => cluster.stop())
  const job = await cluster.api.submit({
    type: 'primes',
    params: { to: 8_000_000, unitSize: 1_000_000 },
    redundancy: { quorum: 2 },
  })
  // The thief takes one replica of every unit and gives half of them back: it holds four units and
  // held four others.
  const mallory = await attacker(t, cluster)
  const mine = (await leaseUnits(mallory.client, 8)).map((g) => g.unit)
  const givenBack = mine.slice(4)
  await mallory.client.release(
    givenBack.map((u) => u.replicaId),
    'to steal them later',
  )
  // The victim, busy, holds the other replica of every unit.
  const { victim, busy } = await busyVictim(cluster)
  const store = cluster.coordinators[0]!.store

  // Asking for the unit it wants (listing all others to be left out) changes nothing: the victim
  // picks from the back of its queue, and the coordinator moves none of them to the thief.
  const wanted = givenBack[0]!.unitId
  const others = mine.map((u) => u.unitId).filter((u) => u !== wanted)
  const offer = await stealFrom(mallory, victim, { avoid: others })
  t.true(offer.units.length > 0, 'the victim gave something')
  t.true(offer.transfer !== undefined)
  const offered = await openUnits(offer)
  const claimed = await mallory.client.claim(offer.transfer!)
  t.deepEqual(claimed.units, [], 'no replica moved to the thief')
  t.deepEqual([...claimed.refused].sort(), offered.map((u) => u.replicaId).sort())
  for (const u of offered)
    t.like(await store.replicaState(u.replicaId), { state: 'leased', worker: victim.identity.id })
  t.is(cluster.coordinators[0]!.counters.leasesTransferred, 0)

  // The thief says so; the victim keeps its units and never offers those to this thief again.
  const notice = served(victim, 1)
  await mallory.overlay.notify(victim.identity.id, {
    type: 'handoff.result',
    transfer: parseLeaseTransfer(await open(offer.transfer!)).nonce,
    claimed: [],
    refused: claimed.refused,
    units: [],
  })
  await notice
  t.is(victim.daemon.stats.held, 8)
  const again = await stealFrom(mallory, victim)
  const second = await openUnits(again)
  const first = new Set(offered.map((u) => u.unitId))
  t.false(
    second.some((u) => first.has(u.unitId)),
    'the victim does not offer units the thief holds or held',
  )
  if (again.transfer !== undefined) {
    t.deepEqual((await mallory.client.claim(again.transfer)).units, [])
    await mallory.overlay.notify(victim.identity.id, {
      type: 'handoff.result',
      transfer: parseLeaseTransfer(await open(again.transfer)).nonce,
      claimed: [],
      refused: again.units.length === 0 ? [] : second.map((u) => u.replicaId),
      units: [],
    })
  }

  // The thief lets go of the rest; an honest worker takes the replicas it gave back, and the job
  // completes with the victim having computed every one of its units.
  await mallory.client.release(
    mine.slice(0, 4).map((u) => u.replicaId),
    'done',
  )
  await cluster.addWorker({ threads: 2, peers: { announceMs: 250, steal: false } })
  busy.open()
  const done = await waitForJob(cluster.api, job.id)
  t.is(done.state, 'completed')
  t.like((await cluster.api.result(job.id)).result, { count: 539_777 })
  t.is(cluster.coordinators[0]!.counters.leasesTransferred, 0)
  t.is(victim.daemon.stats.unitsDone, 8)
})

test('handoff.result - a false report does not make the victim drop its units', async (t) => {
  const cluster = await startCluster({ services: services(), tuning: LONG_LEASES })
  t.teardown(() => cluster.stop())
  const job = await cluster.api.submit({
    type: 'primes',
    params: { to: 8_000_000, unitSize: 1_000_000 },
    redundancy: { quorum: 1 },
  })
  const { victim, busy } = await busyVictim(cluster)
  const mallory = await attacker(t, cluster)
  const exchange = victim.daemon.peering.exchange

  // 1. It steals, claims nothing, and says it claimed everything.
  const offer = await stealFrom(mallory, victim)
  t.true(offer.units.length > 0)
  const ids = await openUnits(offer)
  const nonce = parseLeaseTransfer(await open(offer.transfer!)).nonce
  let notice = served(victim, 1)
  await mallory.overlay.notify(victim.identity.id, {
    type: 'handoff.result',
    transfer: nonce,
    claimed: ids.map((u) => u.replicaId),
    refused: [],
    // "Proof": the victim's own units, which the coordinator signed for the victim, not the thief.
    units: offer.units,
  })
  await notice
  t.is(victim.daemon.stats.held, 8, 'the victim kept every unit')
  t.is(exchange.stats.unprovenClaims, ids.length)
  for (const u of ids)
    t.like(await cluster.coordinators[0]!.store.replicaState(u.replicaId), { worker: victim.identity.id })

  // 2. Again, with units it signed itself as the proof: a forgery, which bans it.
  const offer2 = await stealFrom(mallory, victim)
  const ids2 = await openUnits(offer2)
  const forged = await Promise.all(
    ids2.map((u) =>
      seal(
        'unit',
        { ...u, worker: mallory.identity.id, issuedAt: Date.now(), nonce: randomId() },
        mallory.identity,
      ),
    ),
  )
  notice = served(victim, 1)
  await mallory.overlay.notify(victim.identity.id, {
    type: 'handoff.result',
    transfer: parseLeaseTransfer(await open(offer2.transfer!)).nonce,
    claimed: ids2.map((u) => u.replicaId),
    refused: [],
    units: forged,
  })
  await notice
  t.is(victim.daemon.stats.held, 8)
  t.true(victim.daemon.peering.overlay.isBanned(mallory.identity.id))

  // The victim computes all of its units: none waited for a lease to expire.
  busy.open()
  const done = await waitForJob(cluster.api, job.id)
  t.is(done.state, 'completed')
  t.is(victim.daemon.stats.unitsDone, 8)
  t.is(cluster.coordinators[0]!.counters.leasesExpired, 0)
})

async function uploadDataset(cluster: Cluster, bytes: Uint8Array): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cohort-dataset-'))
  try {
    const file = join(dir, 'data.bin')
    await writeFile(file, bytes)
    return (await cluster.api.uploadDataset((await fileBody(file)).stream)).root
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

test('content - an announcer that does not serve what it announces is set aside and the download completes', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const bytes = knnDataset(16_384, 64, 17) // 1 MiB, 16 chunks
  const root = await uploadDataset(cluster, bytes)
  const { encoded } = await manifestOf(bytes)
  const chunks = chunkCount(bytes.length, CHUNK_BYTES)

  // The liar announces every chunk; it serves the manifest (public anyway) and never answers for a chunk.
  let chunkRequests = 0
  const liar = await attacker(t, cluster, () => ({
    ...quiet,
    accepts: ['knn@1'],
    has: [{ root, bits: new Uint8Array(Math.ceil(chunks / 8)).fill(0xff) }],
  }))
  liar.overlay.handle('chunk.get', (msg) => {
    if (msg.type !== 'chunk.get') return Promise.resolve(undefined)
    if (msg.hash === root) return Promise.resolve({ type: 'chunk', hash: root, bytes: encoded })
    chunkRequests++
    return Promise.resolve(undefined)
  })
  await liar.overlay.start()

  const reader = await cluster.addWorker({
    threads: 1,
    peers: { announceMs: 250, steal: false, requestTimeoutMs: 1_000 },
  })
  const overlay = reader.daemon.peering.overlay
  const demoted: string[] = []
  overlay.on('demoted', (id) => demoted.push(id))
  await waitUntil('the reader hears the liar', () => overlay.peers().some((p) => p.id === liar.identity.id))
  const job = await cluster.api.submit({
    type: 'knn',
    params: { dim: 64, k: 3, queries: { count: 2, seed: 5 }, queriesPerUnit: 1, dataset: root },
    redundancy: { quorum: 1 },
  })
  const done = await waitForJob(cluster.api, job.id)
  t.is(done.state, 'completed')
  const f = reader.daemon.peering.fetcher.stats
  t.log(`the liar was asked for ${chunkRequests} chunks; ${f.peerTimeouts} timeouts`)
  t.deepEqual(demoted, [liar.identity.id], 'the liar was set aside')
  // One round of requests at most (four in flight to one peer), then never again.
  t.true(chunkRequests >= 1 && chunkRequests <= 4, `the liar was asked for ${chunkRequests} chunks`)
  t.is(f.chunksFromCoordinator, chunks, 'every chunk came from the coordinator')
  t.false(overlay.isBanned(liar.identity.id), 'not answering is not a ban')
})

test('announcements - a flood from many identities keeps the table within its bound', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const maxPeers = 16
  // It listens to every shard whatever it hears (a burst of new identities looks like a larger overlay,
  // which would make it listen to fewer shards): what is tested is the table's bound.
  const watcher = await cluster.addWorker({
    threads: 1,
    peers: { announceMs: 250, maxPeers, neighbours: 1024 },
  })
  const honest = await cluster.addWorker({ threads: 1, peers: { announceMs: 250 } })
  const overlay = watcher.daemon.peering.overlay
  await waitUntil('the watcher hears the honest peer', () =>
    overlay.peers().some((p) => p.id === honest.identity.id),
  )

  // 64 identities, each announcing 32 contents with full bitfields on its own shard, all from one
  // connection: a volunteer's credentials allow only its own shard (test/volunteer-auth.test.ts), so
  // the flood comes from a connection without that restriction, as a NATS without per-volunteer
  // credentials would let anyone send it (64 sign-ups would do the same, more slowly).
  const flood = 64
  const nc = await connect(asCoordinator(services()))
  t.teardown(() => nc.close())
  const floods = await Promise.all(
    Array.from({ length: flood }, async () => ({ id: await generateIdentity(false) })),
  )
  const subjects = subjectsFor(cluster.subjectPrefix)
  const ids = new Set(floods.map(({ id }) => id.id))
  const heard = new Set<string>()
  overlay.on('peer', (info) => void (ids.has(info.id) ? heard.add(info.id) : undefined))
  for (const { id } of floods) {
    const has = Array.from({ length: PEER_LIMITS.maxHave }, () => ({
      root: toHex(randomBytes(32)),
      bits: new Uint8Array(1024).fill(0xff),
    }))
    const payload = {
      type: 'peer.announce',
      v: 1,
      worker: id.id,
      at: Date.now(),
      nonce: randomId(),
      threads: 64,
      running: 0,
      buffered: 0,
      free: 64,
      accepts: ['primes@1'],
      has,
      leaving: false,
    }
    nc.publish(announceSubject(subjects, id.id), encode(await seal('peer.announce', payload, id)))
  }
  await nc.flush()
  await waitUntil('the watcher heard the flood', () => heard.size === flood)
  t.true(overlay.stats.known <= maxPeers, `${overlay.stats.known} peers known`)
  t.true(overlay.stats.evicted >= flood - maxPeers, `${overlay.stats.evicted} evicted`)
  t.true(overlay.peers().length <= maxPeers)
  // The honest peer, pushed out by the flood, is back at its next announcement.
  await waitUntil('the honest peer is known again', () =>
    overlay.peers().some((p) => p.id === honest.identity.id),
  )
  t.true(overlay.stats.known <= maxPeers)
})
