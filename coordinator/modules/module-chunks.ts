// Modules larger than one chunk also travel as chunked content, like datasets: their bytes are kept a
// second time as CHUNK_BYTES chunks plus a manifest in the dataset store (the same `chunk:<sha256>`
// keys; root = SHA-256 of the manifest), and the root is recorded in the module's meta. Workers that
// exchange with peers then fetch a module's chunks from each other, and from a coordinator
// (`chunk.get`) only the chunks no peer has.
import { CHUNK_BYTES, type ContentRef } from '../../shared/index.js'
import type { DatasetStore } from '../content/dataset-store.js'
import type { ContentStore } from './content-store.js'

export interface ModuleChunks {
  /**
   * Store module `hash`'s `bytes` as chunks too (unless that was done before) and record the root in
   * its meta. Returns the content reference; undefined for a module of one chunk or less, which
   * travels whole.
   */
  store(hash: string, bytes: Uint8Array): Promise<ContentRef | undefined>
  /**
   * The content reference of stored module `hash`'s chunked form; a module stored before modules
   * were chunked is chunked now. Undefined for an unknown module and one of one chunk or less.
   */
  ref(hash: string): Promise<ContentRef | undefined>
}

export function createModuleChunks(init: {
  modules: ContentStore
  datasets: DatasetStore
  /** Keep the chunked form `root` of module `hash` while the module is kept (see uploads.ts). */
  pin?: (root: string, hash: string) => Promise<void>
}): ModuleChunks {
  const { modules, datasets } = init
  const chunk = async (
    hash: string,
    bytes: Uint8Array,
    meta: Record<string, string> | undefined,
  ): Promise<ContentRef | undefined> => {
    if (bytes.length <= CHUNK_BYTES) return undefined
    const known = meta?.['root']
    if (known !== undefined) return { root: known, size: bytes.length }
    // Storing the same bytes again is a no-op, so two coordinators doing this at once is harmless.
    const { info } = await datasets.put([bytes], meta?.['owner'] ?? 'anonymous')
    await init.pin?.(info.root, hash)
    await modules.annotate(hash, { root: info.root })
    return { root: info.root, size: info.size }
  }
  return {
    store: async (hash, bytes) => chunk(hash, bytes, await modules.meta(hash)),
    async ref(hash) {
      const meta = await modules.meta(hash)
      const size = Number(meta?.['size'])
      if (meta === undefined || !(size > CHUNK_BYTES)) return undefined
      const root = meta['root']
      if (root !== undefined) return { root, size }
      const bytes = await modules.get(hash)
      return bytes === undefined ? undefined : chunk(hash, bytes, meta)
    },
  }
}
