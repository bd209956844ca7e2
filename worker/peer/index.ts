// Peer exchange: the overlay on NATS, content chunks and the unit exchange. Runtime-neutral.
export { createContentStore, type ContentStore, type HeldContent } from './content-store.js'
export {
  createExchange,
  type Exchange,
  type ExchangeHost,
  type ExchangeStats,
  type Giveable,
} from './exchange.js'
export {
  ContentIntegrityError,
  createFetcher,
  type Fetcher,
  type FetcherInit,
  type FetcherStats,
} from './fetcher.js'
export {
  createPeerOverlay,
  sealAnnouncement,
  type OverlayStats,
  type Outgoing,
  type PeerHandler,
  type PeerInfo,
  type PeerOverlay,
  type PeerOverlayInit,
  type PeerState,
} from './overlay.js'
export { createPeering, DEFAULT_CACHE_BYTES, type PeerOptions, type Peering } from './peering.js'
