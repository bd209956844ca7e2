// Getting a content named by a signed unit, BitTorrent style: the manifest and then every chunk,
// each from peers that hold it, several peers and several chunks at once, each checked
// against its SHA-256 before it is kept. A chunk that fails the check is thrown away, its sender
// penalised, and the chunk fetched elsewhere. The coordinator is asked only for what no peer has:
// peers downloading the same content split the chunks no peer has yet among themselves (by their
// rank in the swarm), so a swarm starting together fetches each chunk from the coordinator about
// once; a chunk is taken from the coordinator anyway when the swarm has made no progress for a while.
// A peer that does not answer, or lacks a chunk it announced, is set aside for a while; a chunk two
// peers failed comes from the coordinator, and once a few peers have failed a download it trusts
// only peers that served it good bytes, so lying announcers delay a download by about one request
// timeout each, for a few of them at most, however many identities they use. Holders are the
// neighbours whose announcements say so, and those provider lookups find (overlay.lookup: a bounded
// number of messages, repeated at most once a second while a download goes on, and only when the
// overlay listens to a region of the announcements rather than all of them).
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
  PEER_LIMITS,
} from '../../shared/index.js'
import type { ContentStore, HeldContent } from './content-store.js'
import type { PeerOverlay } from './overlay.js'
import type { Provider } from './providers.js'

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
  /** Peers failing one download after which it trusts only peers that served it good bytes. Default 3. */
  distrustAfter?: number
  /** Between provider lookups for one content while it downloads. Default 1000 ms. */
  lookupEveryMs?: number
  /** Wants per provider lookup. Default 8. */
  lookupWants?: number
}

export interface FetcherStats {
  chunksFromPeers: number
  chunksFromCoordinator: number
  bytesFromPeers: number
  bytesFromCoordinator: number
  corruptChunks: number
  failedRequests: number
  /** Requests to peers that did not answer in time, or lacked what they announced. */
  peerTimeouts: number
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
  const distrustAfter = init.distrustAfter ?? 3
  const stats: FetcherStats = {
    chunksFromPeers: 0,
    chunksFromCoordinator: 0,
    bytesFromPeers: 0,
    bytesFromCoordinator: 0,
    corruptChunks: 0,
    failedRequests: 0,
    peerTimeouts: 0,
  }
  const lookupEveryMs = init.lookupEveryMs ?? 1_000
  const lookupWants = init.lookupWants ?? 8
  const inflight = new Map<string, Promise<HeldContent>>()
  const busy = new Map<string, number>()
  /** Holders found by lookups, by content (only for contents downloading now), and lookups under way. */
  const found = new Map<string, Map<string, Provider>>()
  const looking = new Map<string, Promise<void>>()
  const lastLookup = new Map<string, number>()
  /** Called when a lookup brought answers (downloads waiting for holders wake up). */
  const wakers = new Set<() => void>()

  /**
   * Look holders of `root` up, unless a lookup is under way or was made less than lookupEveryMs ago.
   * Not while the overlay listens to every shard: its announcements then name every holder.
   */
  const lookUp = (root: string, force = false): Promise<void> => {
    if (overlay.stats.regionDepth === 0) return Promise.resolve()
    const running = looking.get(root)
    if (running !== undefined) return running
    if (!force && Date.now() - (lastLookup.get(root) ?? 0) < lookupEveryMs) return Promise.resolve()
    lastLookup.set(root, Date.now())
    const p = overlay
      .lookup(root, { wants: lookupWants, timeoutMs })
      .then(({ providers }) => {
        let known = found.get(root)
        if (known === undefined) found.set(root, (known = new Map<string, Provider>()))
        for (const pr of providers) {
          known.delete(pr.id)
          known.set(pr.id, pr)
        }
        // Bounded: the oldest answers go first.
        for (const id of known.keys()) {
          if (known.size <= PEER_LIMITS.maxPeers) break
          known.delete(id)
        }
        if (providers.length > 0) for (const wake of wakers) wake()
      })
      .catch((err: unknown) => log.debug('provider lookup failed', { root, ...errorFields(err) }))
      .finally(() => looking.delete(root))
    looking.set(root, p)
    return p
  }

  /**
   * What each holder of `root` holds, from neighbours' announcements and lookups (the fresher when
   * both), not banned or set aside, and only holders `trust` accepts.
   */
  const records = (root: string, trust: (peer: string) => boolean = () => true): Map<string, Uint8Array> => {
    const out = new Map<string, { bits: Uint8Array; at: number }>()
    for (const p of overlay.peers()) {
      if (!trust(p.id)) continue
      const entry = p.state.has.find((h) => h.root === root)
      if (entry !== undefined) out.set(p.id, { bits: entry.bits, at: p.seenAt })
    }
    for (const pr of found.get(root)?.values() ?? []) {
      if (pr.id === overlay.id || !trust(pr.id) || overlay.isBanned(pr.id) || overlay.isDemoted(pr.id))
        continue
      const prev = out.get(pr.id)
      if (prev === undefined || prev.at < pr.at) out.set(pr.id, { bits: pr.bits, at: pr.at })
    }
    return new Map([...out].map(([id, r]) => [id, r.bits]))
  }

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
          // Busy is an honest answer; anything else from a peer that announced the chunk is not.
          if (reply.type !== 'peer.error' || reply.code !== 'busy') {
            stats.peerTimeouts++
            overlay.demote(peer, `did not serve ${hash}, which it announced`)
          }
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
        overlay.vouch(peer)
      }
      return bytes
    } catch (err) {
      if (err instanceof ContentIntegrityError) throw err
      stats.failedRequests++
      if (peer !== COORDINATOR && err instanceof TimeoutError) {
        stats.peerTimeouts++
        overlay.demote(peer, `did not answer chunk.get within ${timeoutMs} ms`)
      }
      log.debug('chunk request failed', { peer: peer || 'coordinator', hash, ...errorFields(err) })
      if (peer === COORDINATOR) throw err
      return undefined
    } finally {
      busy.set(peer, (busy.get(peer) ?? 1) - 1)
    }
  }

  /** Peers holding `root` (those `trust` accepts); with `i`, only those holding chunk i. */
  const holders = (root: string, i?: number, trust: (peer: string) => boolean = () => true): string[] => {
    const out: string[] = []
    for (const [id, bits] of records(root, trust)) if (i === undefined || hasBit(bits, i)) out.push(id)
    return out
  }

  /** The manifest from at most two peers holding it, else from a coordinator. */
  const getManifest = async (ref: ContentRef): Promise<{ manifest: Manifest; bytes: Uint8Array }> => {
    if (holders(ref.root).length === 0) await lookUp(ref.root, true)
    for (const peer of holders(ref.root).slice(0, 2)) {
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
    /** Peers that failed a chunk are not asked for it again; a chunk two peers failed comes from a coordinator. */
    const failed = new Map<number, Set<string>>()
    /** Peers that failed this download, and peers that served it good bytes. */
    const failing = new Set<string>()
    const proven = new Set<string>()
    const trust = (peer: string): boolean => failing.size < distrustAfter || proven.has(peer)
    const running = new Map<number, Promise<void>>()
    let lastProgress = Date.now()
    /** Chunks missing here that some peer announced (swarm progress already counted). */
    const credited = new Uint8Array(content.have.bits.length)
    let wakeUp: (() => void) | undefined
    const onPeer = (): void => wakeUp?.()
    overlay.on('peer', onPeer)
    wakers.add(onPeer)

    let coordinatorFailures = 0
    let fatal: unknown
    const start = (i: number, peer: string): void => {
      const p = fetchFrom(peer, chunkHash(content.manifest, i), ref.root)
        .then((bytes) => {
          if (bytes === undefined) {
            let set = failed.get(i)
            if (set === undefined) failed.set(i, (set = new Set()))
            set.add(peer)
            failing.add(peer)
            return
          }
          if (peer !== COORDINATOR) proven.add(peer)
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
        // Who downloads the same content, and whether the swarm made progress: a chunk missing here
        // announced for the first time (each chunk counts once, and this peer then asks the announcer
        // for it, so a false claim costs its maker instead of holding the download up).
        void lookUp(ref.root)
        const swarm = [overlay.id, ...holders(ref.root, undefined, trust)].sort()
        const rank = swarm.indexOf(overlay.id)
        for (const bits of records(ref.root, trust).values()) {
          for (let j = 0; j < bits.length && j < credited.length; j++) {
            const fresh = (bits[j] as number) & ~(content.have.bits[j] as number) & ~(credited[j] as number)
            if (fresh === 0) continue
            credited[j] = (credited[j] as number) | fresh
            lastProgress = Date.now()
          }
        }
        const impatient = Date.now() - lastProgress > patienceMs
        const settled = Date.now() - joinedAt >= joinGraceMs
        for (let i = 0; i < n && running.size < parallel; i++) {
          if (content.have.has(i) || running.has(i)) continue
          const bad = failed.get(i)
          const able =
            (bad?.size ?? 0) < 2 ? holders(ref.root, i, trust).filter((p) => !(bad?.has(p) ?? false)) : []
          const candidates = able.filter((p) => (busy.get(p) ?? 0) < perPeer)
          if (candidates.length > 0) {
            candidates.sort((a, b) => (busy.get(a) ?? 0) - (busy.get(b) ?? 0))
            start(i, candidates[0] as string)
          } else if (able.length > 0) {
            // Held by peers that are busy: wait for a free slot.
          } else if ((bad?.size ?? 0) > 0 || (settled && (i % swarm.length === rank || impatient))) {
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
      wakers.delete(onPeer)
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
        p = download(ref).finally(() => {
          inflight.delete(ref.root)
          found.delete(ref.root)
          lastLookup.delete(ref.root)
        })
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

function hasBit(bits: Uint8Array, i: number): boolean {
  return ((bits[i >> 3] ?? 0) & (1 << (i & 7))) !== 0
}
