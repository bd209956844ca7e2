// WebAssembly modules a worker has fetched, by SHA-256 hex. A module is fetched only when a signed
// unit names its hash: from a coordinator, or, when the worker exchanges content with peers and the
// module is larger than one chunk, as chunks from peers (the coordinator names the chunked form and
// serves only the chunks no peer has). It is refused unless its bytes hash to exactly that name and
// pass Cohort's module rules, and is kept (least recently used first out, within a byte budget) so
// the next units of the job start at once.
import { checkModule, DEFAULT_MODULE_LIMITS } from '../jobs/index.js'
import { CohortError, DIGEST_HEX, sha256Hex, type ContentRef } from '../shared/index.js'
import type { Peering } from './peer/peering.js'

/** Bytes that do not hash to the name they were fetched by, or that break a module rule. */
export class ModuleIntegrityError extends CohortError {
  override name = 'ModuleIntegrityError'
}

export interface ModuleCacheInit {
  /**
   * Ask a coordinator for module `hash`: its bytes or, with `chunked`, possibly the reference of its
   * chunked form. Nothing it returns is trusted: the bytes are checked here.
   */
  fetch: (hash: string, chunked: boolean) => Promise<Uint8Array | ContentRef>
  /** The peer side whose content fetcher gets chunked modules; undefined (or absent): whole bytes. */
  peering?: () => Pick<Peering, 'fetcher'> | undefined
  /** Bytes of modules kept. Default 64 MiB. */
  maxBytes?: number
}

export interface ModuleCacheStats {
  hits: number
  fetched: number
  refused: number
}

export interface ModuleCache {
  /** The verified bytes of module `hash`; throws ModuleIntegrityError when what arrives is not it. */
  get(hash: string): Promise<Uint8Array>
  readonly stats: ModuleCacheStats
}

export function createModuleCache(init: ModuleCacheInit): ModuleCache {
  const maxBytes = init.maxBytes ?? 64 * 1024 * 1024
  const kept = new Map<string, Uint8Array>()
  const inflight = new Map<string, Promise<Uint8Array>>()
  const stats: ModuleCacheStats = { hits: 0, fetched: 0, refused: 0 }
  let size = 0

  const keep = (hash: string, bytes: Uint8Array): void => {
    if (bytes.length > maxBytes) return
    kept.set(hash, bytes)
    size += bytes.length
    for (const [h, b] of kept) {
      if (size <= maxBytes) break
      kept.delete(h)
      size -= b.length
    }
  }

  /** The module's bytes, unchecked: from a coordinator, or through the content fetcher. */
  const obtain = async (hash: string): Promise<Uint8Array> => {
    const fetcher = init.peering?.()?.fetcher
    const got = await init.fetch(hash, fetcher !== undefined)
    if (got instanceof Uint8Array) return got
    if (fetcher === undefined) throw new ModuleIntegrityError(`asked for module ${hash}, got a reference`)
    try {
      // The fetcher checked every chunk against the manifest and the manifest against the root. The
      // bytes are copied out of the content store (shared memory, evicted at its own pace).
      return new Uint8Array((await fetcher.resolve(got)).data)
    } catch {
      // No room in the content cache, or neither peers nor coordinators delivered: the whole bytes.
      const whole = await init.fetch(hash, false)
      if (whole instanceof Uint8Array) return whole
      throw new ModuleIntegrityError(`asked for module ${hash}, got a reference`)
    }
  }

  const load = async (hash: string): Promise<Uint8Array> => {
    const bytes = await obtain(hash)
    const actual = await sha256Hex(bytes)
    if (actual !== hash) {
      stats.refused++
      throw new ModuleIntegrityError(`module bytes hash to ${actual}, not ${hash}: refused`)
    }
    try {
      checkModule(bytes, DEFAULT_MODULE_LIMITS)
    } catch (err) {
      stats.refused++
      throw new ModuleIntegrityError(`module ${hash} breaks a rule: ${(err as Error).message}`, {
        cause: err,
      })
    }
    stats.fetched++
    keep(hash, bytes)
    return bytes
  }

  return {
    stats,
    async get(hash) {
      if (!DIGEST_HEX.test(hash)) throw new ModuleIntegrityError(`"${hash}" is not a SHA-256 hex name`)
      const hit = kept.get(hash)
      if (hit !== undefined) {
        stats.hits++
        kept.delete(hash)
        kept.set(hash, hit)
        return hit
      }
      let p = inflight.get(hash)
      if (p === undefined) {
        p = load(hash).finally(() => inflight.delete(hash))
        inflight.set(hash, p)
      }
      return await p
    },
  }
}
