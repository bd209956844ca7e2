// Thread entry: the peers of the peer-to-peer content benchmark (p2p.ts), on an event loop other than
// the coordinator's, so that the coordinator's serving and the peers' signing and hash checks do not
// queue behind each other. Each peer has its own NATS connection, identity, content store, overlay
// and fetcher, the pieces a worker daemon's peering is made of (worker/peer), with the daemon's
// defaults. A host thread holds one or more peers and lives for one mode of one repetition: ending it
// frees the peers' copies of the content.
import type { NatsConnection } from '@nats-io/nats-core'
import { createHash } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { parentPort, workerData, type MessagePort } from 'node:worker_threads'
import { generateIdentity, openUnit, parseUnitPayload, PEER_LIMITS, subjectsFor } from '../shared/index.js'
import {
  createContentStore,
  createCoordinatorClient,
  createFetcher,
  createPeerOverlay,
  type ContentStore,
  type Fetcher,
  type PeerOverlay,
} from '../worker/index.js'
import { benchLogger } from './log.js'
import { volunteerConnection } from './nats-login.js'
import type { P2pHostInit, P2pReply, P2pRequest } from './p2p-protocol.js'
import { now, sleep } from './stats.js'

interface Peer {
  nats: NatsConnection
  store: ContentStore
  overlay: PeerOverlay
  fetcher: Fetcher
}

if (parentPort === null) throw new Error('p2p-host.js runs as a worker thread')
const port: MessagePort = parentPort
const init = workerData as P2pHostInit
const send = (reply: P2pReply): void => port.postMessage(reply)
const subjects = subjectsFor(init.subjectPrefix)
const peers: Peer[] = []
/** These peers compute nothing: they only fetch and serve content. */
const NO_UNITS = { threads: 1, running: 0, buffered: 0, free: 0, accepts: [] }
/** The job type of the units that give the peers their leases (p2p.ts). */
const KNN = 'knn@1'

async function startPeer(i: number): Promise<Peer> {
  const identity = await generateIdentity(false)
  const nats = await volunteerConnection(
    init.natsUrl,
    init.coordinatorUrl,
    identity,
    `bench-p2p-${init.mode}-${init.first + i}`,
  )
  const log = benchLogger(`p2p-${init.first + i}`)
  const store = createContentStore(init.content.size)
  const overlay = createPeerOverlay({
    nats,
    identity,
    subjects,
    log,
    announceMs: init.announceMs,
    state: () => ({ ...NO_UNITS, has: store.have(PEER_LIMITS.maxHave) }),
  })
  // What a daemon's peering serves: chunks and manifests it holds, by hash.
  overlay.handle('chunk.get', (msg) => {
    if (msg.type !== 'chunk.get') return Promise.resolve(undefined)
    const bytes = store.lookup(msg.hash)
    return Promise.resolve(
      bytes === undefined
        ? { type: 'peer.error', message: 'not held' }
        : { type: 'chunk', hash: msg.hash, bytes },
    )
  })
  // Coordinators serve content only for a lease that needs it: each peer takes one unit of the job
  // reading the content (p2p.ts submits it) and names it in its chunk requests; it never runs it.
  const lease: { replicaId?: string } = {}
  const client = createCoordinatorClient({ nats, identity, subjects, leaseFor: () => lease.replicaId })
  const grant = await client.requestWork(1, [KNN])
  const unit = grant.units[0]
  if (unit === undefined) throw new Error('no unit of the content job was granted to this peer')
  lease.replicaId = parseUnitPayload(await openUnit(unit)).replicaId
  const fetcher = createFetcher({
    store,
    overlay,
    fromCoordinator: (hash, root) => client.getChunk(hash, root),
    log,
    // Plain client-server has no swarm to wait for; the p2p peers keep the daemon's join grace.
    ...(init.mode === 'client-server' ? { joinGraceMs: 0 } : {}),
  })
  if (init.mode === 'p2p') await overlay.start()
  return { nats, store, overlay, fetcher }
}

async function mesh(timeoutMs: number): Promise<number> {
  const started = now()
  const want = init.swarm - 1
  while (!peers.every((p) => p.overlay.peers().length >= want)) {
    if (now() - started > timeoutMs) {
      const heard = peers.map((p) => p.overlay.peers().length).join(', ')
      throw new Error(`the peers did not all hear of each other within ${timeoutMs} ms (heard: ${heard})`)
    }
    await sleep(10)
  }
  return now() - started
}

async function resolveAll(): Promise<P2pReply> {
  const elu = performance.eventLoopUtilization()
  const startedAt = now()
  const doneAt = await Promise.all(
    peers.map(async (p) => {
      await p.fetcher.resolve(init.content)
      return now()
    }),
  )
  return {
    type: 'resolved',
    startedAt,
    doneAt,
    fetchers: peers.map((p) => ({ ...p.fetcher.stats })),
    eventLoopUtilization: performance.eventLoopUtilization(elu).utilization,
  }
}

function digests(): (string | null)[] {
  return peers.map((p) => {
    const held = p.store.get(init.content.root)
    if (held?.have.complete() !== true) return null
    return createHash('sha256').update(held.data).digest('hex')
  })
}

async function stop(): Promise<void> {
  await Promise.allSettled(peers.map((p) => p.overlay.stop()))
  await Promise.allSettled(peers.map((p) => p.nats.drain().catch(() => p.nats.close())))
}

/** The reply to one request; the thread ends after answering `stop`. */
async function answer(req: P2pRequest): Promise<P2pReply> {
  if (req.type === 'mesh') return { type: 'meshed', ms: await mesh(req.timeoutMs) }
  if (req.type === 'resolve') return resolveAll()
  if (req.type === 'digests') return { type: 'digests', digests: digests() }
  await stop()
  return { type: 'stopped' }
}

port.on('message', (req: P2pRequest) => {
  answer(req)
    .catch((err: unknown): P2pReply => ({ type: 'failed', message: String(err) }))
    .then((reply) => {
      send(reply)
      if (req.type === 'stop') port.close()
    })
    .catch(() => port.close())
})

async function startAll(): Promise<void> {
  for (let i = 0; i < init.peers; i++) peers.push(await startPeer(i))
}

startAll()
  .then((): P2pReply => ({ type: 'ready' }))
  .catch(async (err: unknown): Promise<P2pReply> => {
    await stop()
    return { type: 'failed', message: `the peers did not start: ${String(err)}` }
  })
  .then(send, () => port.close())
