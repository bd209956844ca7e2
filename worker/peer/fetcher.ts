// Getting a content named by a signed unit, BitTorrent style: the manifest and then every chunk,
// each from peers that announce holding it, several peers and several chunks at once, each checked
// against its SHA-256 before it is kept. A chunk that fails the check is thrown away, its sender
// penalised, and the chunk fetched elsewhere. The coordinator is asked only for what no peer has:
// peers downloading the same content split the chunks no peer has yet among themselves (by their
// rank in the swarm), so a swarm starting together fetches each chunk from the coordinator about
// once; a chunk is taken from the coordinator anyway when the swarm has made no progress for a while.
import {
  chunkCount,
  chunkHash,
  CohortError,
  errorFields,
  parseManifest,
  sha256Hex,
  TimeoutError,
  type ContentRef,
  type Logger,
  type Manifest,
} from '../../shared/index.js'
import type { ContentStore, HeldContent } from './content-store.js'
import type { PeerOverlay } from './overlay.js'

/** Bytes that do not hash to what the signed unit committed to. */
export class ContentIntegrityError extends CohortError {
  override name = 'ContentIntegrityError'
}

export interface FetcherInit {
  store: ContentStore
  overlay: PeerOverlay
  /**
   * Ask a coordinator for a chunk or manifest by hash (unchecked; checked here); `root` is the
   * content it belongs to (equal to `hash` for the manifest), which the request names.
   */
  fromCoordinator(hash: string, root: string): Promise<Uint8Array>
  log: Logger
  /** Chunk requests in flight at once. Default 8. */
  parallel?: number
  /** Requests in flight to one peer at once. Default 4. */
  perPeer?: number
  /** With no chunk arriving anywhere in the swarm for this long, take missing chunks from a coordinator. Default 3000 ms. */
  patienceMs?: number
  /** Per chunk request. Default 5000 ms. */
  requestTimeoutMs?: number
  /**
   * After joining a content's swarm, how long to wait for other peers starting the same download to
   * announce themselves before taking chunks from a coordinator. Default 500 ms.
   */
  joinGraceMs?: number
}

export interface FetcherStats {
  chunksFromPeers: number
  chunksFromCoordinator: number
  bytesFromPeers: number
  bytesFromCoordinator: number
  corruptChunks: number
  failedRequests: number
}

export interface Fetcher {
  readonly stats: FetcherStats
  /** The whole content, checked chunk by chunk; shared by concurrent callers. */
  resolve(ref: ContentRef, signal?: AbortSignal): Promise<HeldContent>
}

const COORDINATOR = ''

export function createFetcher(init: FetcherInit): Fetcher {
  const { store, overlay, log } = init
  const parallel = init.parallel ?? 8
  const perPeer = init.perPeer ?? 4
  const patienceMs = init.patienceMs ?? 3_000
  const timeoutMs = init.requestTimeoutMs ?? 5_000
  const joinGraceMs = init.joinGraceMs ?? 500
  const stats: FetcherStats = {
    chunksFromPeers: 0,
    chunksFromCoordinator: 0,
    bytesFromPeers: 0,
    bytesFromCoordinator: 0,
    corruptChunks: 0,
    failedRequests: 0,
  }
  const inflight = new Map<string, Promise<HeldContent>>()
  const busy = new Map<string, number>()

  /** Bytes named `hash` (of content `root`) from `peer` (or the coordinator), checked; undefined when they failed. */
  const fetchFrom = async (peer: string, hash: string, root: string): Promise<Uint8Array | undefined> => {
    busy.set(peer, (busy.get(peer) ?? 0) + 1)
    try {
      let bytes: Uint8Array
      if (peer === COORDINATOR) {
        bytes = await init.fromCoordinator(hash, root)
      } else {
        const reply = await overlay.request(peer, { type: 'chunk.get', hash }, timeoutMs)
        if (reply.type !== 'chunk' || reply.hash !== hash) {
          stats.failedRequests++
          return undefined
        }
        bytes = reply.bytes
      }
      if ((await sha256Hex(bytes)) !== hash) {
        stats.corruptChunks++
        if (peer === COORDINATOR)
          throw new ContentIntegrityError(`coordinator sent bytes that do not hash to ${hash}`)
        overlay.penalise(peer, `sent a chunk that does not hash to ${hash}`)
        return undefined
      }
      if (peer === COORDINATOR) {
        stats.chunksFromCoordinator++
        stats.bytesFromCoordinator += bytes.length
      } else {
        stats.chunksFromPeers++
        stats.bytesFromPeers += bytes.length
      }
      return bytes
    } catch (err) {
      if (err instanceof ContentIntegrityError) throw err
      stats.failedRequests++
      log.debug('chunk request failed', { peer: peer || 'coordinator', hash, ...errorFields(err) })
      if (peer === COORDINATOR) throw err
      return undefined
    } finally {
      busy.set(peer, (busy.get(peer) ?? 1) - 1)
    }
  }

  /** Peers announcing `root`; with `i`, only those holding chunk i. */
  const holders = (root: string, i?: number): string[] => {
    const out: string[] = []
    for (const p of overlay.peers()) {
      const entry = p.state.has.find((h) => h.root === root)
      if (entry === undefined) continue
      if (i === undefined || ((entry.bits[i >> 3] ?? 0) & (1 << (i & 7))) !== 0) out.push(p.id)
    }
    return out
  }

  const getManifest = async (ref: ContentRef): Promise<{ manifest: Manifest; bytes: Uint8Array }> => {
    const tried = new Set<string>()
    for (;;) {
      const peer = holders(ref.root).find((p) => !tried.has(p))
      if (peer === undefined) break
      tried.add(peer)
      const bytes = await fetchFrom(peer, ref.root, ref.root)
      if (bytes !== undefined) return { manifest: await parseManifest(bytes, ref.root), bytes }
    }
    const bytes = await fetchFrom(COORDINATOR, ref.root, ref.root)
    if (bytes === undefined) throw new ContentIntegrityError(`no manifest for ${ref.root}`)
    return { manifest: await parseManifest(bytes, ref.root), bytes }
  }

  const download = async (ref: ContentRef): Promise<HeldContent> => {
    let held = store.get(ref.root)
    if (held === undefined) {
      const { manifest, bytes } = await getManifest(ref)
      if (manifest.size !== ref.size)
        throw new ContentIntegrityError(
          `content ${ref.root} is ${manifest.size} bytes, the unit says ${ref.size}`,
        )
      held = store.add(ref.root, manifest, bytes)
      // Join the swarm: peers now count this one when they split the chunks no peer has.
      overlay.announceSoon()
    }
    const content = held
    const joinedAt = Date.now()
    const n = chunkCount(content.manifest.size, content.manifest.chunkSize)
    const release = store.pin(ref.root)
    /** Peers that failed a chunk are not asked for it again. */
    const failed = new Map<number, Set<string>>()
    const running = new Map<number, Promise<void>>()
    let lastProgress = Date.now()
    let swarmSeen = 0
    let wakeUp: (() => void) | undefined
    const onPeer = (): void => wakeUp?.()
    overlay.on('peer', onPeer)

    let coordinatorFailures = 0
    let fatal: unknown
    const start = (i: number, peer: string): void => {
      const p = fetchFrom(peer, chunkHash(content.manifest, i), ref.root)
        .then((bytes) => {
          if (bytes === undefined) {
            let set = failed.get(i)
            if (set === undefined) failed.set(i, (set = new Set()))
            set.add(peer)
            return
          }
          store.putChunk(ref.root, i, bytes)
          lastProgress = Date.now()
          overlay.announceSoon()
        })
        .catch((err: unknown) => {
          // Only coordinator requests throw: a refusal or bad bytes end the download; a timeout is retried.
          if (
            err instanceof ContentIntegrityError ||
            !(err instanceof TimeoutError || /timeout/i.test(String(err)))
          )
            fatal = err
          else if (++coordinatorFailures > 5) fatal = err
        })
        .finally(() => {
          running.delete(i)
          wakeUp?.()
        })
      running.set(i, p)
    }

    try {
      for (;;) {
        if (fatal !== undefined)
          throw fatal instanceof Error ? fatal : new ContentIntegrityError('content download failed')
        if (content.have.complete()) return content
        // Who downloads the same content, and how far the swarm has come.
        const swarm = [overlay.id, ...holders(ref.root)].sort()
        const rank = swarm.indexOf(overlay.id)
        let seen = 0
        for (const p of overlay.peers())
          for (const h of p.state.has) if (h.root === ref.root) for (const b of h.bits) seen += popcount(b)
        if (seen > swarmSeen) {
          swarmSeen = seen
          lastProgress = Date.now()
        }
        const impatient = Date.now() - lastProgress > patienceMs
        const settled = Date.now() - joinedAt >= joinGraceMs
        for (let i = 0; i < n && running.size < parallel; i++) {
          if (content.have.has(i) || running.has(i)) continue
          const bad = failed.get(i)
          const candidates = holders(ref.root, i).filter(
            (p) => !(bad?.has(p) ?? false) && (busy.get(p) ?? 0) < perPeer,
          )
          if (candidates.length > 0) {
            candidates.sort((a, b) => (busy.get(a) ?? 0) - (busy.get(b) ?? 0))
            start(i, candidates[0] as string)
          } else if (holders(ref.root, i).some((p) => !(bad?.has(p) ?? false))) {
            // Held by peers that are busy: wait for a free slot.
          } else if (settled && (i % swarm.length === rank || impatient)) {
            start(i, COORDINATOR)
          }
        }
        if (content.have.complete()) return content
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, running.size > 0 ? timeoutMs : Math.min(100, patienceMs, joinGraceMs))
          wakeUp = () => {
            clearTimeout(t)
            wakeUp = undefined
            resolve()
          }
        })
        if (running.size === 0 && Date.now() - lastProgress > patienceMs + timeoutMs * 4) {
          throw new TimeoutError(`content ${ref.root}: no chunk arrived for ${patienceMs + timeoutMs * 4} ms`)
        }
      }
    } finally {
      overlay.off('peer', onPeer)
      await Promise.allSettled([...running.values()])
      release()
    }
  }

  return {
    stats,
    resolve(ref, signal) {
      const done = store.get(ref.root)
      if (done?.have.complete() === true) return Promise.resolve(done)
      let p = inflight.get(ref.root)
      if (p === undefined) {
        p = download(ref).finally(() => inflight.delete(ref.root))
        inflight.set(ref.root, p)
      }
      if (signal === undefined) return p
      // One caller giving up does not stop the download others wait for.
      return new Promise<HeldContent>((resolve, reject) => {
        const abort = (): void => reject(new CohortError('content wait aborted'))
        if (signal.aborted) abort()
        signal.addEventListener('abort', abort, { once: true })
        p.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort))
      })
    },
  }
}

function popcount(b: number): number {
  let n = 0
  for (let x = b; x !== 0; x &= x - 1) n++
  return n
}
