// Peer discovery that scales, on a real NATS server with volunteers' permissions: real overlays driven
// round by round (`tick()`: one announce interval's work, no timers), so that counts are counts and
// not timings. What a peer receives to learn about others stays about the same from 50 to 200 peers;
// a provider lookup finds a chunk's holders among 200 peers with a bounded number of messages; and
// forged announcements, forged provider records and replayed or misdirected wants are refused.
import test from 'ava'
import type { Msg, NatsConnection } from '@nats-io/nats-core'
import {
  announceSubject,
  decode,
  encode,
  generateIdentity,
  inboxPrefixFor,
  open,
  parseEnvelope,
  parsePeerWant,
  PEER_LIMITS,
  PEER_MESSAGE_VERSION,
  PROVIDER_QUEUE,
  randomId,
  seal,
  subjectsFor,
  toHex,
  wantSubject,
  type HaveEntry,
  type Identity,
  type Subjects,
} from '../shared/index.js'
import { createPeerOverlay, sealAnnouncement, type PeerOverlay, type PeerState } from '../worker/index.js'
import { testLogger, waitUntil } from './helpers/cluster.js'
import { uniquePrefix, useServices } from './helpers/services.js'
import { connectVolunteer, issuedAccess } from './helpers/volunteer.js'
import { randomBytes } from 'node:crypto'

const services = useServices(test, { websocket: false })

interface Peer {
  identity: Identity
  nats: NatsConnection
  overlay: PeerOverlay
  has: HaveEntry[]
}

const quiet = (has: HaveEntry[]): PeerState => ({
  threads: 1,
  running: 0,
  buffered: 0,
  free: 1,
  accepts: ['primes@1'],
  has,
})

/** A peer on its own volunteer connection; its timer never fires (the test drives it with tick()). */
async function startPeer(prefix: string): Promise<Peer> {
  const identity = await generateIdentity(false)
  const nats = await connectVolunteer(issuedAccess(services(), prefix), identity)
  const peer: Peer = { identity, nats, has: [], overlay: undefined as unknown as PeerOverlay }
  peer.overlay = createPeerOverlay({
    nats,
    identity,
    subjects: subjectsFor(prefix),
    log: testLogger('peer').log,
    announceMs: 3_600_000,
    state: () => quiet(peer.has),
  })
  await peer.overlay.start()
  return peer
}

async function startPeers(prefix: string, n: number): Promise<Peer[]> {
  const out: Peer[] = []
  // A few at a time: sign-up and connection are not what is tested.
  for (let i = 0; i < n; i += 25)
    out.push(...(await Promise.all(Array.from({ length: Math.min(25, n - i) }, () => startPeer(prefix)))))
  return out
}

async function stopAll(peers: Peer[]): Promise<void> {
  await Promise.allSettled(peers.map((p) => p.overlay.stop()))
  await Promise.allSettled(peers.map((p) => p.nats.close()))
}

/** Every message published so far has reached every subscriber, and every announcement was handled. */
async function settled(peers: Peer[]): Promise<void> {
  // Twice: the first makes the server take every publication, the second every delivery.
  for (let i = 0; i < 2; i++) await Promise.all(peers.map((p) => p.nats.flush()))
  await waitUntil('every announcement handled', () =>
    peers.every((p) => p.overlay.stats.discoveryHandled === p.overlay.stats.discoveryIn),
  )
}

/** `n` announce intervals: every peer does one interval's work, then everything is delivered. */
async function rounds(peers: Peer[], n: number): Promise<void> {
  for (let r = 0; r < n; r++) {
    await Promise.all(peers.map((p) => p.overlay.tick()))
    await settled(peers)
  }
}

/** Discovery messages each peer received per interval over `n` intervals, mean over the peers. */
async function receivedPerInterval(peers: Peer[], n: number): Promise<number> {
  const before = peers.map((p) => p.overlay.stats.discoveryIn)
  await rounds(peers, n)
  const total = peers.reduce((sum, p, i) => sum + p.overlay.stats.discoveryIn - (before[i] as number), 0)
  return total / peers.length / n
}

/** A bitfield of `chunks` chunks with the listed ones set. */
function bitsOf(chunks: number, set: number[]): Uint8Array {
  const bits = new Uint8Array(Math.ceil(chunks / 8))
  for (const i of set) bits[i >> 3] = (bits[i >> 3] as number) | (1 << (i & 7))
  return bits
}

const hasBit = (bits: Uint8Array, i: number): boolean => ((bits[i >> 3] ?? 0) & (1 << (i & 7))) !== 0

test('scale - discovery traffic per peer stays flat from 50 to 200 peers, and a lookup among 200 finds a chunk’s holders with a bounded number of messages', async (t) => {
  t.timeout(600_000)
  const prefix = uniquePrefix('disc')
  const peers: Peer[] = []
  t.teardown(() => stopAll(peers))
  const target = PEER_LIMITS.neighbours

  peers.push(...(await startPeers(prefix, 50)))
  await settled(peers)
  // Enough intervals to settle on a region (halvings, then a re-evaluation every 3 intervals).
  await rounds(peers, 6)
  const at50 = await receivedPerInterval(peers, 4)

  peers.push(...(await startPeers(prefix, 150)))
  await settled(peers)
  await rounds(peers, 6)
  const at200 = await receivedPerInterval(peers, 4)
  const depths = peers.map((p) => p.overlay.stats.regionDepth)
  const estimates = peers.map((p) => p.overlay.stats.sizeEstimate).sort((a, b) => a - b)
  t.log(
    `announcements received per peer per interval: ${at50.toFixed(1)} at 50 peers, ${at200.toFixed(1)} at 200 ` +
      `(all-to-all: 50 and 200); region depths ${Math.min(...depths)}–${Math.max(...depths)}, ` +
      `size estimates ${estimates[0]}–${estimates[estimates.length - 1]} (median ${estimates[100]})`,
  )
  // All-to-all would be 4 times as much; the target is about `target` whatever the size.
  t.true(at200 <= 2 * at50, `${at200.toFixed(1)} at 200 vs ${at50.toFixed(1)} at 50`)
  t.true(at200 <= 2 * target, `${at200.toFixed(1)} received per interval at 200 peers`)
  t.true(at200 >= target / 4, `${at200.toFixed(1)} per interval: each peer still hears a sample`)
  // Every peer knows some peers (handoff and stealing need a few with room), not all of them.
  t.true(peers.every((p) => p.overlay.peers().length >= 4))
  t.true(peers.some((p) => p.overlay.peers().length < 199))

  // Content: five holders of chunk 3 of a content of 20 chunks, one holder of other chunks only.
  const root = toHex(randomBytes(32))
  const holders = peers.slice(10, 15)
  for (const h of holders) h.has = [{ root, bits: bitsOf(20, [0, 3, 7]) }]
  const partial = peers[20] as Peer
  partial.has = [{ root, bits: bitsOf(20, [1, 2]) }]
  // One interval: holders listen for wants for what they hold.
  await rounds(peers, 1)
  const asker = peers[150] as Peer
  const wants = 8
  const found = new Map<string, Uint8Array>()
  let lookups = 0
  let out = 0
  let received = 0
  const chunkHolders = (): string[] => [...found].filter(([, bits]) => hasBit(bits, 3)).map(([id]) => id)
  while (chunkHolders().length < holders.length && lookups < 10) {
    const s0 = asker.nats.stats()
    // A lookup ends when every want is answered; the long timeout matters only on a loaded machine.
    const r = await asker.overlay.lookup(root, { wants, timeoutMs: 60_000 })
    const s1 = asker.nats.stats()
    lookups++
    // What went over the asker's connection: the wants out, their answers in; nothing else.
    t.is(s1.outMsgs - s0.outMsgs, r.sent)
    t.true(r.sent <= wants && s1.inMsgs - s0.inMsgs <= wants, `${s1.inMsgs - s0.inMsgs} messages in`)
    t.is(s1.inMsgs - s0.inMsgs, r.received)
    out += r.sent
    received += r.received
    t.log(`lookup ${lookups}: ${r.sent} out, ${r.received} in, ${r.providers.length} found`)
    for (const p of r.providers) found.set(p.id, p.bits)
    if (lookups === 1) t.true(r.providers.length >= 1, 'the first lookup finds a holder')
  }
  t.log(
    `the holders of a chunk among 200 peers found in ${lookups} lookups: ${out} messages out, ${received} in`,
  )
  t.deepEqual(chunkHolders().sort(), holders.map((h) => h.identity.id).sort())
  const ids = new Set([...holders, partial].map((h) => h.identity.id))
  t.true(
    [...found.keys()].every((id) => ids.has(id)),
    'only holders answer',
  )

  // Content nobody holds: every want is answered by the server's "no responders".
  const none = await asker.overlay.lookup(toHex(randomBytes(32)), { wants, timeoutMs: 60_000 })
  t.deepEqual(none.providers, [])
  t.true(none.received <= wants && none.sent === wants)
})

/** Two peers that hear each other (a small overlay listens to every shard). */
async function pair(prefix: string): Promise<[Peer, Peer]> {
  const [a, b] = (await startPeers(prefix, 2)) as [Peer, Peer]
  await rounds([a, b], 1)
  return [a, b]
}

test('announcements - one relayed on another peer’s shard, or tampered with, is refused', async (t) => {
  const prefix = uniquePrefix('disc')
  const subjects = subjectsFor(prefix)
  const [watcher, mallory] = await pair(prefix)
  t.teardown(() => stopAll([watcher, mallory]))
  t.true(watcher.overlay.peers().some((p) => p.id === mallory.identity.id))
  const victim = await generateIdentity(false)
  const refused = watcher.overlay.stats.refused
  // Properly signed by the victim, but published on mallory's shard (the only one it may publish on).
  mallory.nats.publish(
    announceSubject(subjects, mallory.identity.id),
    await sealAnnouncement(victim, quiet([])),
  )
  // Mallory's own announcement with its body altered after signing (a capacity it did not sign).
  const env = decode(await sealAnnouncement(mallory.identity, quiet([]))) as { body: Uint8Array }
  const body = decode(env.body) as Record<string, unknown>
  mallory.nats.publish(
    announceSubject(subjects, mallory.identity.id),
    encode({ ...env, body: encode({ ...body, free: 4096 }) }),
  )
  await settled([watcher, mallory])
  t.is(watcher.overlay.stats.refused - refused, 2)
  t.false(watcher.overlay.peers().some((p) => p.id === victim.id))
})

/** A want for `root` signed by `identity`, as it goes on the wire. */
async function sealWant(identity: Identity, root: string, nonce = randomId()): Promise<Uint8Array> {
  return encode(
    await seal(
      'peer.want',
      { type: 'peer.want', v: 1, worker: identity.id, at: Date.now(), nonce, root },
      identity,
    ),
  )
}

/** A raw member of the providers' queue for `root`: answers the i-th want with what `answer` builds. */
function rawProvider(
  nc: NatsConnection,
  subjects: Subjects,
  root: string,
  answer: (want: { worker: string; nonce: string }, i: number) => Promise<Uint8Array>,
): { wants: string[] } {
  const seen = { wants: [] as string[] }
  nc.subscribe(wantSubject(subjects, root), {
    queue: PROVIDER_QUEUE,
    callback: (_err, m) => {
      const i = seen.wants.length
      seen.wants.push('')
      void (async () => {
        const env = parseEnvelope(decode(m.data), 'peer.want', PEER_LIMITS.maxWantBytes)
        const want = parsePeerWant(await open(env))
        seen.wants[i] = want.nonce
        m.respond(await answer(want, i))
      })()
    },
  })
  return seen
}

test('provider records - forged, misdirected or off-topic answers to a lookup are refused and find no holder', async (t) => {
  const prefix = uniquePrefix('disc')
  const subjects = subjectsFor(prefix)
  const [asker, mallory] = await pair(prefix)
  t.teardown(() => stopAll([asker, mallory]))
  const root = toHex(randomBytes(32))
  const other = await generateIdentity(false)
  const bits = bitsOf(8, [0, 1, 2])
  const peerHave = (worker: string, to: string, re: string, about: string) => ({
    type: 'peer.have',
    v: PEER_MESSAGE_VERSION,
    worker,
    at: Date.now(),
    nonce: randomId(),
    to,
    re,
    root: about,
    bits,
  })
  // Mallory is the only member of the queue: it gets every want, and answers each one wrong.
  const seen = rawProvider(mallory.nats, subjects, root, async (want, i) => {
    const body = [
      // Signed by mallory, naming another peer as its sender.
      peerHave(other.id, want.worker, want.nonce, root),
      // Naming no want of this lookup.
      peerHave(mallory.identity.id, want.worker, randomId(), root),
      // About another content.
      peerHave(mallory.identity.id, want.worker, want.nonce, toHex(randomBytes(32))),
      // Addressed to another peer.
      peerHave(mallory.identity.id, other.id, want.nonce, root),
    ][i] as object
    return encode(await seal('peer', body, mallory.identity))
  })
  await mallory.nats.flush()
  const refused = asker.overlay.stats.refused
  const reasons: string[] = []
  asker.overlay.on('refused', (reason) => reasons.push(reason))
  const r = await asker.overlay.lookup(root, { wants: 4, timeoutMs: 60_000 })
  t.log(reasons)
  t.is(seen.wants.length, 4)
  t.deepEqual(r.providers, [], 'no forged record makes a holder')
  t.is(r.received, 4)
  t.is(asker.overlay.stats.refused - refused, 4, 'each answer refused')
})

test('wants - a replayed want is answered once, and a want asking for its answer in another peer’s inbox is not answered', async (t) => {
  const prefix = uniquePrefix('disc')
  const subjects = subjectsFor(prefix)
  const [holder, mallory] = await pair(prefix)
  const victim = await startPeer(prefix)
  t.teardown(() => stopAll([holder, mallory, victim]))
  const root = toHex(randomBytes(32))
  holder.has = [{ root, bits: bitsOf(8, [0]) }]
  await rounds([holder, mallory, victim], 1)

  const answers: Msg[] = []
  const inbox = `${inboxPrefixFor(mallory.identity.id)}.raw`
  mallory.nats.subscribe(inbox, { callback: (_e, m) => void answers.push(m) })
  const want = await sealWant(mallory.identity, root)
  const served = holder.overlay.stats.wantsServed
  const refused = holder.overlay.stats.refused
  const replayed = holder.overlay.stats.replayed
  mallory.nats.publish(wantSubject(subjects, root), want, { reply: inbox })
  mallory.nats.publish(wantSubject(subjects, root), want, { reply: inbox })
  await settled([holder, mallory])
  await waitUntil('the holder handled both', () => holder.overlay.stats.refused - refused >= 1)
  await settled([holder, mallory])
  t.is(answers.length, 1, 'answered once')
  t.is(holder.overlay.stats.wantsServed - served, 1)
  t.is(holder.overlay.stats.replayed - replayed, 1)

  // A want for another content, sent on this content's subject: refused, not answered.
  const misfiled = holder.overlay.stats.refused
  mallory.nats.publish(
    wantSubject(subjects, root),
    await sealWant(mallory.identity, toHex(randomBytes(32))),
    {
      reply: inbox,
    },
  )
  await settled([holder, mallory])
  await waitUntil('the holder refused it', () => holder.overlay.stats.refused - misfiled >= 1)
  await settled([holder, mallory])
  t.is(answers.length, 1, 'not answered')

  // Reflection: a want signed by mallory whose reply subject is the victim's inbox.
  let reflected = 0
  const victimInbox = `${inboxPrefixFor(victim.identity.id)}.reflected`
  victim.nats.subscribe(victimInbox, { callback: () => void reflected++ })
  await victim.nats.flush()
  const before = holder.overlay.stats.refused
  // Mallory's connection may not publish to the victim's inbox itself, but may name it as reply.
  mallory.nats.publish(wantSubject(subjects, root), await sealWant(mallory.identity, root), {
    reply: victimInbox,
  })
  await settled([holder, mallory, victim])
  await waitUntil('the holder refused it', () => holder.overlay.stats.refused - before >= 1)
  await settled([holder, mallory, victim])
  t.is(reflected, 0, "nothing reached the victim's inbox")
  t.is(holder.overlay.stats.wantsServed - served, 1, 'not served')
})
