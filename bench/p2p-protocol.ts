// Messages between the peer-to-peer content benchmark (p2p.ts) and the thread hosting its peers
// (p2p-host.ts).
import type { ContentRef } from '../shared/index.js'
import type { FetcherStats } from '../worker/index.js'

/**
 * `client-server`: the peers' overlays are never started, so each fetcher hears of no peer and takes
 * every chunk from the coordinator. `p2p`: the overlays run, and peers take chunks from each other.
 */
export type P2pMode = 'client-server' | 'p2p'

/** `workerData` of the host thread. */
export interface P2pHostInit {
  natsUrl: string
  /** The coordinator the peers sign up with for NATS credentials; none: they connect without. */
  coordinatorUrl?: string
  /** The coordinator's subject prefix: `chunk.get` goes to it, and the overlay lives under it. */
  subjectPrefix: string
  mode: P2pMode
  /** Peers on this thread, and in all threads together (the swarm a p2p peer waits to hear of). */
  peers: number
  swarm: number
  /** Index of this thread's first peer (names its NATS connections). */
  first: number
  /** Between presence announcements (p2p mode). */
  announceMs: number
  content: ContentRef
}

export type P2pRequest =
  /** Wait until each peer here has heard of every other (p2p mode); `meshed` says how long it took. */
  | { type: 'mesh'; timeoutMs: number }
  /** Every peer resolves the content at once; `resolved` when all hold it whole. */
  | { type: 'resolve' }
  /** SHA-256 of each peer's copy (after the measurement, so hashing the whole copy is not timed). */
  | { type: 'digests' }
  | { type: 'stop' }

export interface P2pResolved {
  type: 'resolved'
  /** Epoch ms (sub-ms precision) just before the peers were asked to resolve. */
  startedAt: number
  /** Epoch ms at which each peer here held the whole content, in peer order. */
  doneAt: number[]
  fetchers: FetcherStats[]
  /** Event-loop utilization of the host thread (its peers together) during the resolve. */
  eventLoopUtilization: number
}

export type P2pReply =
  | { type: 'ready' }
  | { type: 'meshed'; ms: number }
  | P2pResolved
  | { type: 'digests'; digests: (string | null)[] }
  | { type: 'stopped' }
  | { type: 'failed'; message: string }
