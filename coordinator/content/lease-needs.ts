// What a data request is tied to: it is good once (its nonce), and coordinators serve a module or a chunk only to a worker that holds
// a lease whose unit needs it now. The request names the replica; the lease must be the requester's
// and live, and the unit's input (read through its job type) must name the module, or the content
// (a dataset, or a module's chunked form) whose manifest lists the chunk. Anything else is refused,
// so an identity cannot make the coordinators serve what it has no work for.
import {
  decodeManifest,
  fromHex,
  LIMITS,
  ProtocolError,
  type AnyJobType,
  type ContentRef,
} from '../../shared/index.js'
import type { Counters } from '../counters.js'
import type { ContentStore } from '../modules/content-store.js'
import type { Store } from '../store/store.js'
import type { DatasetStore } from './dataset-store.js'

/** A data request refused because no lease the requester holds needs that data. */
export class NotNeededError extends ProtocolError {
  override name = 'NotNeededError'
}

export interface LeaseNeedsInit {
  store: Pick<Store, 'heldUnit' | 'useNonce'>
  jobTypes: ReadonlyMap<string, AnyJobType>
  /** Modules; a large one's meta records the root of its chunked form. */
  modules: Pick<ContentStore, 'meta'>
  datasets: Pick<DatasetStore, 'manifest'>
  counters: Counters
  /** Chunk lists of manifests kept in memory (content-addressed, so never stale). Default 8 MiB. */
  manifestCacheBytes?: number
}

export interface LeaseNeeds {
  /** Refuse a signed request whose nonce `worker` used before (a replay). */
  once(worker: string, nonce: string): Promise<void>
  /** Refuse unless `worker` holds `replicaId` now and its unit names module `hash`. */
  module(worker: string, replicaId: string, hash: string, now: number): Promise<void>
  /**
   * Refuse unless `worker` holds `replicaId` now, its unit reads content `root` (a dataset, or the
   * chunked form of a module it names), and `hash` is `root` or a chunk of its manifest.
   */
  chunk(worker: string, replicaId: string, root: string, hash: string, now: number): Promise<void>
}

export function createLeaseNeeds(init: LeaseNeedsInit): LeaseNeeds {
  const { store, jobTypes, counters } = init
  const cacheBytes = init.manifestCacheBytes ?? 8 * 1024 * 1024
  const manifests = new Map<string, Uint8Array>()
  let cached = 0

  const refuse = (message: string): never => {
    counters.dataRequestsRefused++
    throw new NotNeededError(message)
  }

  /** The modules and contents the unit of a live lease of `worker` names. */
  const needsOf = async (
    worker: string,
    replicaId: string,
    now: number,
  ): Promise<{ modules: string[]; content: ContentRef[] }> => {
    const unit = await store.heldUnit(worker, replicaId, now)
    if (unit === undefined) return refuse(`replica ${replicaId} is not leased to this worker now`)
    const jobType = jobTypes.get(unit.kind)
    if (jobType === undefined) return refuse(`job type ${unit.kind} is not served here`)
    try {
      const input = jobType.parseInput(unit.input) as unknown
      return { modules: jobType.resources?.(input) ?? [], content: jobType.content?.(input) ?? [] }
    } catch {
      return refuse(`the unit of replica ${replicaId} names no data`)
    }
  }

  /** The 32-byte chunk digests of manifest `root`, concatenated. */
  const chunksOf = async (root: string): Promise<Uint8Array> => {
    const hit = manifests.get(root)
    if (hit !== undefined) return hit
    const bytes = await init.datasets.manifest(root)
    if (bytes === undefined) return refuse(`no manifest ${root}`)
    const { chunks } = decodeManifest(bytes)
    manifests.set(root, chunks)
    cached += chunks.length
    for (const [k, v] of manifests) {
      if (cached <= cacheBytes) break
      manifests.delete(k)
      cached -= v.length
    }
    return chunks
  }

  const lists = (chunks: Uint8Array, hash: string): boolean => {
    const want = fromHex(hash)
    outer: for (let i = 0; i + 32 <= chunks.length; i += 32) {
      for (let k = 0; k < 32; k++) if (chunks[i + k] !== want[k]) continue outer
      return true
    }
    return false
  }

  return {
    async once(worker, nonce) {
      // Past twice the clock window the request's `at` is refused anyway.
      if (!(await store.useNonce(worker, nonce, 2 * LIMITS.maxClockSkewMs)))
        refuse('request replayed: this nonce was used before')
    },
    async module(worker, replicaId, hash, now) {
      const { modules } = await needsOf(worker, replicaId, now)
      if (!modules.includes(hash)) refuse(`the unit of replica ${replicaId} does not use module ${hash}`)
    },
    async chunk(worker, replicaId, root, hash, now) {
      const { modules, content } = await needsOf(worker, replicaId, now)
      let reads = content.some((c) => c.root === root)
      for (const m of modules) {
        if (reads) break
        reads = (await init.modules.meta(m))?.['root'] === root
      }
      if (!reads) refuse(`the unit of replica ${replicaId} does not read content ${root}`)
      if (hash !== root && !lists(await chunksOf(root), hash))
        refuse(`chunk ${hash} is not part of content ${root}`)
    },
  }
}
