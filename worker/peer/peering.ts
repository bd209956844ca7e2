// A worker's peer side in one piece: the overlay (presence, signed messages), the content store and
// fetcher (hash-checked chunks, served to other peers), and the unit exchange (handoff, stealing).
import {
  PEER_LIMITS,
  type AnyJobType,
  type Identity,
  type Logger,
  type Subjects,
} from '../../shared/index.js'
import type { CoordinatorClient } from '../coordinator-client.js'
import type { TrustedKeys } from '../unit-verifier.js'
import { createContentStore, type ContentStore } from './content-store.js'
import { createExchange, type Exchange, type ExchangeHost } from './exchange.js'
import { createFetcher, type Fetcher } from './fetcher.js'
import { createPeerOverlay, type PeerOverlay } from './overlay.js'
import type { NatsConnection } from '@nats-io/nats-core'

export interface PeerOptions {
  /** Between presence announcements. Default 2000 ms. */
  announceMs?: number
  /** Bytes of content kept and served to peers (the volunteer's cache size). Default 1 GiB. */
  cacheBytes?: number
  /** With no chunk arriving in the swarm for this long, missing chunks come from a coordinator. Default 3000 ms. */
  patienceMs?: number
  /** Chunk requests in flight at once. Default 8. */
  parallel?: number
  /** Per request to a peer. Default 5000 ms. */
  requestTimeoutMs?: number
  /** Take buffered units from busy peers when idle and the coordinators have none. Default true. */
  steal?: boolean
  /** Peers kept in the announcement table. Default 256. */
  maxPeers?: number
  /** Peers whose announcements this worker aims to hear (the region of shards it listens to). Default 32. */
  neighbours?: number
}

export interface PeeringInit {
  nats: NatsConnection
  identity: Identity
  subjects: Subjects
  trusted: TrustedKeys
  jobTypes: ReadonlyMap<string, AnyJobType>
  client: CoordinatorClient
  log: Logger
  options: PeerOptions
  host: ExchangeHost & {
    threads(): number
    running(): number
  }
}

export interface Peering {
  readonly overlay: PeerOverlay
  readonly content: ContentStore
  readonly fetcher: Fetcher
  readonly exchange: Exchange
  start(): Promise<void>
  stop(): Promise<void>
}

export const DEFAULT_CACHE_BYTES = 1024 * 1024 * 1024

export function createPeering(init: PeeringInit): Peering {
  const { host, options, log } = init
  const content = createContentStore(options.cacheBytes ?? DEFAULT_CACHE_BYTES)
  const overlay = createPeerOverlay({
    nats: init.nats,
    identity: init.identity,
    subjects: init.subjects,
    log: log.child('peer'),
    ...(options.announceMs === undefined ? {} : { announceMs: options.announceMs }),
    ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
    ...(options.maxPeers === undefined ? {} : { maxPeers: options.maxPeers }),
    ...(options.neighbours === undefined ? {} : { neighbours: options.neighbours }),
    state: () => ({
      threads: host.threads(),
      running: host.running(),
      buffered: host.buffered(),
      free: host.accepting() ? Math.max(0, host.room()) : 0,
      accepts: host.accepts(),
      has: content.have(PEER_LIMITS.maxHave),
    }),
  })
  const fetcher = createFetcher({
    store: content,
    overlay,
    fromCoordinator: (hash, root) => init.client.getChunk(hash, root),
    log: log.child('content'),
    ...(options.parallel === undefined ? {} : { parallel: options.parallel }),
    ...(options.patienceMs === undefined ? {} : { patienceMs: options.patienceMs }),
    ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
  })
  const exchange = createExchange({
    identity: init.identity,
    trusted: init.trusted,
    jobTypes: init.jobTypes,
    client: init.client,
    overlay,
    host,
    log: log.child('exchange'),
    keep: () => host.threads(),
  })
  // Serve what this worker holds: chunks and manifests, by hash.
  overlay.handle('chunk.get', (msg) => {
    if (msg.type !== 'chunk.get') return Promise.resolve(undefined)
    const bytes = content.lookup(msg.hash)
    return Promise.resolve(
      bytes === undefined
        ? { type: 'peer.error', code: 'missing', message: `no ${msg.hash} here` }
        : { type: 'chunk', hash: msg.hash, bytes },
    )
  })
  return {
    overlay,
    content,
    fetcher,
    exchange,
    start: () => overlay.start(),
    async stop() {
      exchange.stop()
      await overlay.stop()
    },
  }
}
