// WebAssembly modules a worker has fetched, by SHA-256 hex. A module is fetched from a coordinator
// only when a signed unit names its hash, is refused unless its bytes hash to exactly that name and
// pass Cohort's module rules, and is kept (least recently used first out, within a byte budget) so
// the next units of the job start at once. Peer exchange of modules does not exist yet.
import { checkModule, DEFAULT_MODULE_LIMITS } from '../jobs/index.js'
import { CohortError, DIGEST_HEX, sha256Hex } from '../shared/index.js'

/** Bytes that do not hash to the name they were fetched by, or that break a module rule. */
export class ModuleIntegrityError extends CohortError {
  override name = 'ModuleIntegrityError'
}

export interface ModuleCacheInit {
  /** Fetch the bytes named by `hash` (from a coordinator); they are checked here, not trusted. */
  fetch: (hash: string) => Promise<Uint8Array>
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

  const load = async (hash: string): Promise<Uint8Array> => {
    const bytes = await init.fetch(hash)
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
