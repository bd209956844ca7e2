// The content a worker holds: for each root, its manifest, the bytes received so far and a bitfield
// of the chunks that are in place (each checked against the manifest before it was put). It serves
// chunks to peers by hash, and keeps within the volunteer's cache size by dropping the least recently
// used content that no unit is using. Content is kept in shared memory where the runtime allows it,
// so unit threads read it without a copy. No `node:` imports.
import {
  Bitfield,
  chunkCount,
  chunkHash,
  chunkRange,
  LimitError,
  type HaveEntry,
  type Manifest,
} from '../../shared/index.js'

export interface HeldContent {
  readonly root: string
  readonly manifest: Manifest
  /** The encoded manifest (served to peers under the root's hash). */
  readonly manifestBytes: Uint8Array
  readonly data: Uint8Array
  readonly have: Bitfield
}

export interface ContentStore {
  /** Bytes the store may hold. */
  readonly maxBytes: number
  /** Bytes held now (whole contents, allocated when their manifest arrives). */
  readonly bytes: number
  get(root: string): HeldContent | undefined
  /** Start holding a content (its manifest already checked against the root). Evicts to make room. */
  add(root: string, manifest: Manifest, manifestBytes: Uint8Array): HeldContent
  /** Put chunk `i` (already checked against the manifest). */
  putChunk(root: string, i: number, bytes: Uint8Array): void
  /** A chunk's or a manifest's bytes by SHA-256, when held in full. */
  lookup(hash: string): Uint8Array | undefined
  /** Keep `root` while a unit uses it; returns the release function. */
  pin(root: string): () => void
  /** What to announce: the roots held and their bitfields (most recently used first). */
  have(limit: number): HaveEntry[]
}

/** Shared memory when the runtime has it (Node; cross-origin isolated pages), else plain memory. */
function allocate(size: number): Uint8Array {
  const g = globalThis as { crossOriginIsolated?: boolean }
  const shared = typeof SharedArrayBuffer !== 'undefined' && g.crossOriginIsolated !== false
  return new Uint8Array(shared ? new SharedArrayBuffer(size) : new ArrayBuffer(size))
}

interface Entry extends HeldContent {
  pins: number
  used: number
}

export function createContentStore(maxBytes: number): ContentStore {
  const held = new Map<string, Entry>()
  /** chunk hash -> (root, index) of every chunk of every held content. */
  const index = new Map<string, { root: string; i: number }>()
  let bytes = 0
  let clock = 0

  const drop = (e: Entry): void => {
    held.delete(e.root)
    bytes -= e.data.length
    const n = chunkCount(e.manifest.size, e.manifest.chunkSize)
    for (let i = 0; i < n; i++) {
      const h = chunkHash(e.manifest, i)
      if (index.get(h)?.root === e.root) index.delete(h)
    }
  }

  const makeRoom = (need: number): void => {
    if (need > maxBytes)
      throw new LimitError(
        `content of ${need} bytes does not fit in this worker's cache of ${maxBytes} bytes`,
      )
    const byAge = [...held.values()].filter((e) => e.pins === 0).sort((a, b) => a.used - b.used)
    for (const e of byAge) {
      if (bytes + need <= maxBytes) break
      drop(e)
    }
    if (bytes + need > maxBytes)
      throw new LimitError(`cache of ${maxBytes} bytes is full of content that units are using`)
  }

  return {
    maxBytes,
    get bytes() {
      return bytes
    },
    get(root) {
      const e = held.get(root)
      if (e !== undefined) e.used = ++clock
      return e
    },
    add(root, manifest, manifestBytes) {
      const existing = held.get(root)
      if (existing !== undefined) return existing
      makeRoom(manifest.size)
      const n = chunkCount(manifest.size, manifest.chunkSize)
      const e: Entry = {
        root,
        manifest,
        manifestBytes,
        data: allocate(manifest.size),
        have: new Bitfield(n),
        pins: 0,
        used: ++clock,
      }
      held.set(root, e)
      bytes += manifest.size
      for (let i = 0; i < n; i++) index.set(chunkHash(manifest, i), { root, i })
      return e
    },
    putChunk(root, i, chunk) {
      const e = held.get(root)
      if (e === undefined) return
      const [start, end] = chunkRange(e.manifest, i)
      if (chunk.length !== end - start) throw new LimitError(`chunk ${i} must be ${end - start} bytes`)
      e.data.set(chunk, start)
      e.have.set(i)
    },
    lookup(hash) {
      const m = held.get(hash)
      if (m !== undefined) return m.manifestBytes
      const at = index.get(hash)
      if (at === undefined) return undefined
      const e = held.get(at.root)
      if (e === undefined || !e.have.has(at.i)) return undefined
      const [start, end] = chunkRange(e.manifest, at.i)
      return e.data.slice(start, end)
    },
    pin(root) {
      const e = held.get(root)
      if (e === undefined) return () => {}
      e.pins++
      let released = false
      return () => {
        if (released) return
        released = true
        e.pins--
      }
    },
    have(limit) {
      return [...held.values()]
        .sort((a, b) => b.used - a.used)
        .slice(0, limit)
        .map((e) => ({ root: e.root, bits: e.have.bits.slice() }))
    },
  }
}
