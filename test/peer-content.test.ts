// Content chunks between peers on a real NATS server: a swarm fetches a content from peers that hold
// it, splits what no peer has yet so the source serves it about once, and a peer serving corrupted
// chunks is caught, penalised and routed around. The "source" here is a counting function standing in
// for the coordinators' chunk.get (the end-to-end path through a real coordinator is in
// test/peer-jobs.test.ts).
import test from 'ava'
import type { NatsConnection } from '@nats-io/nats-core'
import { randomBytes } from 'node:crypto'
import {
  peerShard,
  chunkCount,
  chunkHash,
  encode,
  equalBytes,
  generateIdentity,
  manifestOf,
  PEER_MESSAGE_VERSION,
  seal,
  subjectsFor,
  type Manifest,
} from '../shared/index.js'
import {
  createContentStore,
  createFetcher,
  createPeerOverlay,
  type ContentStore,
  type Fetcher,
  type PeerOverlay,
} from '../worker/index.js'
import { testLogger, waitUntil } from './helpers/cluster.js'
import { uniquePrefix, useServices } from './helpers/services.js'
import { connectVolunteer, issuedAccess } from './helpers/volunteer.js'

const services = useServices(test, { websocket: false })

interface Peer {
  overlay: PeerOverlay
  store: ContentStore
  fetcher: Fetcher
  nats: NatsConnection
}

interface Source {
  fetch(hash: string): Promise<Uint8Array>
  bytesServed: number
}

function sourceOf(bytes: Uint8Array, manifest: Manifest, encoded: Uint8Array, root: string): Source {
  const byHash = new Map<string, Uint8Array>([[root, encoded]])
  for (let i = 0; i < chunkCount(manifest.size); i++)
    byHash.set(chunkHash(manifest, i), bytes.subarray(i * manifest.chunkSize, (i + 1) * manifest.chunkSize))
  const s: Source = {
    bytesServed: 0,
    fetch(hash) {
      const b = byHash.get(hash)
      if (b === undefined) return Promise.reject(new Error(`no ${hash}`))
      s.bytesServed += b.length
      return Promise.resolve(b)
    },
  }
  return s
}

async function startPeer(
  prefix: string,
  source: Source,
  opts: {
    serve?: (hash: string, store: ContentStore) => Uint8Array | undefined
    /** Peers whose announcements it aims to hear (the overlay's default unless set). */
    neighbours?: number
  } = {},
): Promise<Peer> {
  const identity = await generateIdentity(false)
  const nats = await connectVolunteer(issuedAccess(services(), prefix), identity)
  const store = createContentStore(64 * 1024 * 1024)
  const overlay = createPeerOverlay({
    nats,
    identity,
    subjects: subjectsFor(prefix),
    log: testLogger('peer').log,
    announceMs: 200,
    ...(opts.neighbours === undefined ? {} : { neighbours: opts.neighbours }),
    state: () => ({ threads: 1, running: 0, buffered: 0, free: 0, accepts: [], has: store.have(32) }),
  })
  const serve = opts.serve ?? ((hash, s) => s.lookup(hash))
  overlay.handle('chunk.get', (msg) => {
    if (msg.type !== 'chunk.get') return Promise.resolve(undefined)
    const bytes = serve(msg.hash, store)
    return Promise.resolve(
      bytes === undefined
        ? { type: 'peer.error', message: 'not here' }
        : { type: 'chunk', hash: msg.hash, bytes },
    )
  })
  const fetcher = createFetcher({
    store,
    overlay,
    fromCoordinator: (h) => source.fetch(h),
    log: testLogger('fetch').log,
    patienceMs: 1_500,
    requestTimeoutMs: 2_000,
  })
  await overlay.start()
  return { overlay, store, fetcher, nats }
}

async function stopAll(peers: Peer[]): Promise<void> {
  for (const p of peers) {
    await p.overlay.stop()
    await p.nats.drain()
  }
}

/** Resolves once every peer in `peers` has heard of every other. */
async function meshed(peers: Peer[]): Promise<void> {
  const ready = (): boolean => peers.every((p) => p.overlay.peers().length >= peers.length - 1)
  await new Promise<void>((resolve) => {
    if (ready()) return resolve()
    const on = (): void => {
      if (!ready()) return
      for (const p of peers) p.overlay.off('peer', on)
      resolve()
    }
    for (const p of peers) p.overlay.on('peer', on)
  })
}

/** Resolves once `viewer` has heard each of `holders` announce every chunk of `root` (`chunks` of them). */
async function heardHolding(viewer: Peer, holders: Peer[], root: string, chunks: number): Promise<void> {
  const whole = (id: string): boolean => {
    const has = viewer.overlay
      .peers()
      .find((p) => p.id === id)
      ?.state.has.find((h) => h.root === root)
    if (has === undefined) return false
    let n = 0
    for (const b of has.bits) for (let x = b; x !== 0; x &= x - 1) n++
    return n === chunks
  }
  const ready = (): boolean => holders.every((h) => whole(h.overlay.id))
  await new Promise<void>((resolve) => {
    if (ready()) return resolve()
    const on = (): void => {
      if (!ready()) return
      viewer.overlay.off('peer', on)
      resolve()
    }
    viewer.overlay.on('peer', on)
  })
}

async function content(size: number) {
  const bytes = new Uint8Array(randomBytes(size))
  const { manifest, root, encoded } = await manifestOf(bytes)
  return { bytes, manifest, root, encoded, ref: { root, size } }
}

test('a swarm that starts together takes each chunk from the source about once', async (t) => {
  const c = await content(40 * 64 * 1024 + 123)
  const source = sourceOf(c.bytes, c.manifest, c.encoded, c.root)
  const prefix = uniquePrefix('s')
  const peers = await Promise.all([1, 2, 3, 4].map(() => startPeer(prefix, source)))
  try {
    await meshed(peers)
    const got = await Promise.all(peers.map((p) => p.fetcher.resolve(c.ref)))
    for (const g of got) t.true(equalBytes(g.data, c.bytes))
    const fromPeers = peers.reduce((n, p) => n + p.fetcher.stats.bytesFromPeers, 0)
    t.log(`source served ${source.bytesServed} bytes for 4 × ${c.bytes.length}; peers exchanged ${fromPeers}`)
    // Plain client-server would be 4× the size; the manifest is fetched by each peer that finds no holder.
    t.true(source.bytesServed < 1.5 * c.bytes.length, `source served ${source.bytesServed}`)
    t.true(fromPeers >= 2 * c.bytes.length)
  } finally {
    await stopAll(peers)
  }
})

test('a late peer takes everything from peers and nothing from the source', async (t) => {
  const c = await content(10 * 64 * 1024)
  const source = sourceOf(c.bytes, c.manifest, c.encoded, c.root)
  const prefix = uniquePrefix('s')
  const [seed, other] = await Promise.all([startPeer(prefix, source), startPeer(prefix, source)])
  const peers = [seed, other]
  try {
    await seed.fetcher.resolve(c.ref)
    const served = source.bytesServed
    await meshed(peers)
    // The seed's announcement must list the whole content before the late peer looks.
    await new Promise<void>((resolve) => {
      const check = (): void => {
        const s = other.overlay.peers()[0]?.state.has.find((h) => h.root === c.root)
        if (s !== undefined && s.bits.every((b, i) => b === (i === s.bits.length - 1 ? 0b11 : 0xff))) {
          other.overlay.off('peer', check)
          resolve()
        }
      }
      other.overlay.on('peer', check)
      check()
    })
    const got = await other.fetcher.resolve(c.ref)
    t.true(equalBytes(got.data, c.bytes))
    t.is(source.bytesServed, served)
    t.is(other.fetcher.stats.chunksFromPeers, 10 + 1, 'ten chunks and the manifest')
  } finally {
    await stopAll(peers)
  }
})

test('a peer that does not hear the holder’s announcements finds it by lookup and takes everything from it', async (t) => {
  const c = await content(10 * 64 * 1024)
  const source = sourceOf(c.bytes, c.manifest, c.encoded, c.root)
  const prefix = uniquePrefix('s')
  const seed = await startPeer(prefix, source)
  const fillers = await Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map(() => startPeer(prefix, source)))
  // Aiming at one neighbour among ten peers, it listens to a region of about a sixteenth of the shards.
  const late = await startPeer(prefix, source, { neighbours: 1 })
  const peers = [seed, ...fillers, late]
  t.teardown(() => stopAll(peers))
  await seed.fetcher.resolve(c.ref)
  const served = source.bytesServed
  const seedShard = peerShard(seed.overlay.id)
  // Its region holds not the seed, and the seed's last announcement it heard (if any) is forgotten.
  await waitUntil(
    'the late peer knows nothing of the seed',
    () =>
      late.overlay.stats.regionDepth > 0 &&
      !seedShard.startsWith(late.overlay.region) &&
      !late.overlay.peers().some((p) => p.id === seed.overlay.id),
  )
  const got = await late.fetcher.resolve(c.ref)
  t.true(equalBytes(got.data, c.bytes))
  t.is(source.bytesServed, served, 'nothing from the source')
  t.is(late.fetcher.stats.chunksFromPeers, 10 + 1, 'ten chunks and the manifest')
  t.true(late.overlay.stats.lookups >= 1)
})

test('a peer serving corrupted chunks is caught, penalised, and the content arrives intact', async (t) => {
  const c = await content(12 * 64 * 1024)
  const source = sourceOf(c.bytes, c.manifest, c.encoded, c.root)
  const prefix = uniquePrefix('s')
  // The liar holds the real content (so it announces every chunk) but flips a bit in what it sends.
  const liar = await startPeer(prefix, source, {
    serve: (hash, store) => {
      const b = store.lookup(hash)
      if (b === undefined || hash === c.root) return b
      const bad = b.slice()
      bad[0] = (bad[0] as number) ^ 1
      return bad
    },
  })
  const honest = await startPeer(prefix, source)
  const victim = await startPeer(prefix, source)
  const peers = [liar, honest, victim]
  try {
    // The honest peer first (so it never meets the liar's chunks), then the liar copies it.
    await honest.fetcher.resolve(c.ref)
    await liar.fetcher.resolve(c.ref)
    await meshed(peers)
    // The victim must know that both hold every chunk before it starts: hearing of the liar is not
    // enough (its last announcement may predate its download), and a victim that knows only the
    // honest peer's chunks can get them all from it before the liar's next announcement. Knowing both,
    // it spreads its first requests over the two (four at a time each), so the liar gets several.
    await heardHolding(victim, [liar, honest], c.root, chunkCount(c.manifest.size))
    const banned = new Promise<string>((resolve) =>
      victim.overlay.on('penalised', (id, _reason, isBanned) => isBanned && resolve(id)),
    )
    const got = await victim.fetcher.resolve(c.ref)
    t.true(equalBytes(got.data, c.bytes), 'the content is exactly the original')
    t.true(victim.fetcher.stats.corruptChunks >= 1)
    t.is(await banned, liar.overlay.id)
    t.true(victim.overlay.isBanned(liar.overlay.id))
    t.false(victim.overlay.peers().some((p) => p.id === liar.overlay.id))
    // What the victim serves on is what it verified.
    t.deepEqual(victim.store.lookup(chunkHash(c.manifest, 0)), c.bytes.slice(0, 64 * 1024))
  } finally {
    await stopAll(peers)
  }
})

test('messages that are unsigned, forged or addressed to another peer are refused', async (t) => {
  const c = await content(64 * 1024)
  const source = sourceOf(c.bytes, c.manifest, c.encoded, c.root)
  const prefix = uniquePrefix('s')
  const peer = await startPeer(prefix, source)
  const other = await generateIdentity(false)
  try {
    await peer.fetcher.resolve(c.ref)
    const subject = `${subjectsFor(prefix).peerInbox}.${peer.overlay.id}`
    const before = peer.overlay.stats.refused
    const reasons: string[] = []
    const threeRefused = new Promise<void>((resolve) =>
      peer.overlay.on('refused', (reason) => {
        if (reasons.push(reason) === 3) resolve()
      }),
    )
    // Garbage, a valid-looking envelope with a bad signature, and a message for someone else.
    peer.nats.publish(subject, new Uint8Array([1, 2, 3]))
    peer.nats.publish(
      subject,
      encode({
        v: 1,
        kind: 'peer',
        body: new Uint8Array(10),
        signer: other.publicKey,
        sig: new Uint8Array(64),
      }),
    )
    const wrong = await seal(
      'peer',
      {
        type: 'chunk.get',
        v: PEER_MESSAGE_VERSION,
        worker: other.id,
        at: Date.now(),
        nonce: 'n1',
        to: other.id,
        hash: c.root,
      },
      other,
    )
    peer.nats.publish(subject, encode(wrong))
    await peer.nats.flush()
    await threeRefused
    t.is(peer.overlay.stats.refused - before, 3)
    t.is(peer.overlay.stats.served, 0)
    t.regex(reasons.join(' | '), /signature does not verify/)
    t.regex(reasons.join(' | '), /addressed to another peer/)
  } finally {
    await stopAll([peer])
  }
})
