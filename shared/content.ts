// Content addressing for large data (a dataset every unit of a job reads): the bytes are cut into
// CHUNK_BYTES pieces, each named by its SHA-256; a manifest lists the pieces in order, and the
// SHA-256 of the manifest's encoding is the content's root. A signed unit names the root, so it
// commits to every chunk hash and every byte: anything received from a peer is checked against
// these hashes before it is kept, served or used.
import { toHex } from './bytes.js'
import { decode, encode } from './codec.js'
import { DIGEST_HEX, sha256Hex } from './digest.js'
import { ProtocolError } from './errors.js'
import { bytesField, expectRecord, intField, literal, stringField, type Rec } from './schema.js'

/** Size of every chunk but the last. */
export const CHUNK_BYTES = 64 * 1024
/** Most chunks one content may have (512 MiB); keeps a manifest under 256 KiB. */
export const MAX_CONTENT_CHUNKS = 8192
export const MAX_CONTENT_BYTES = CHUNK_BYTES * MAX_CONTENT_CHUNKS
/** Largest encoded manifest. */
export const MAX_MANIFEST_BYTES = 32 * MAX_CONTENT_CHUNKS + 256

/** What a unit input carries: the root and the size (so a worker can refuse what it cannot hold). */
export interface ContentRef {
  root: string
  size: number
}

export interface Manifest {
  type: 'manifest'
  v: 1
  size: number
  chunkSize: number
  /** 32-byte SHA-256 digests, concatenated, in chunk order. */
  chunks: Uint8Array
}

export function chunkCount(size: number, chunkSize = CHUNK_BYTES): number {
  return Math.max(1, Math.ceil(size / chunkSize))
}

/** The hex SHA-256 of chunk `i`. */
export function chunkHash(m: Manifest, i: number): string {
  return toHex(m.chunks.subarray(i * 32, i * 32 + 32))
}

/** Byte range [start, end) of chunk `i`. */
export function chunkRange(m: Manifest, i: number): [number, number] {
  const start = i * m.chunkSize
  return [start, Math.min(m.size, start + m.chunkSize)]
}

export function encodeManifest(m: Manifest): Uint8Array {
  return encode({ type: 'manifest', v: 1, size: m.size, chunkSize: m.chunkSize, chunks: m.chunks })
}

/** Parse a manifest from untrusted bytes; with `root`, the bytes must hash to it. */
export async function parseManifest(bytes: Uint8Array, root?: string): Promise<Manifest> {
  if (root !== undefined && (await sha256Hex(bytes)) !== root)
    throw new ProtocolError(`manifest bytes do not hash to ${root}`)
  return decodeManifest(bytes)
}

/** Decode a manifest whose bytes were already checked against their root (a store's own copy). */
export function decodeManifest(bytes: Uint8Array): Manifest {
  const r = expectRecord(decode(bytes, MAX_MANIFEST_BYTES), 'manifest')
  literal(r, 'type', 'manifest')
  literal(r, 'v', 1)
  const size = intField(r, 'size', 0, MAX_CONTENT_BYTES)
  const chunkSize = intField(r, 'chunkSize', CHUNK_BYTES, CHUNK_BYTES)
  const n = chunkCount(size, chunkSize)
  const chunks = bytesField(r, 'chunks', 32 * n, 32 * n)
  return { type: 'manifest', v: 1, size, chunkSize, chunks }
}

/** Cut `bytes` into chunks and build their manifest (isomorphic; the coordinator streams instead). */
export async function manifestOf(
  bytes: Uint8Array,
): Promise<{ manifest: Manifest; root: string; encoded: Uint8Array }> {
  if (bytes.length > MAX_CONTENT_BYTES)
    throw new ProtocolError(`content is larger than ${MAX_CONTENT_BYTES} bytes`)
  const n = chunkCount(bytes.length)
  const chunks = new Uint8Array(32 * n)
  for (let i = 0; i < n; i++) {
    const piece = bytes.subarray(i * CHUNK_BYTES, Math.min(bytes.length, (i + 1) * CHUNK_BYTES))
    const d = new Uint8Array(await crypto.subtle.digest('SHA-256', piece as Uint8Array<ArrayBuffer>))
    chunks.set(d, i * 32)
  }
  const manifest: Manifest = { type: 'manifest', v: 1, size: bytes.length, chunkSize: CHUNK_BYTES, chunks }
  const encoded = encodeManifest(manifest)
  return { manifest, root: await sha256Hex(encoded), encoded }
}

/** Read a content reference from untrusted input; `field` names it in errors. */
export function parseContentRef(raw: unknown, field: string): ContentRef {
  const r: Rec = expectRecord(raw, field)
  return {
    root: stringField(r, 'root', 64, DIGEST_HEX),
    size: intField(r, 'size', 0, MAX_CONTENT_BYTES),
  }
}

/** Which chunks of a content a peer holds: one bit per chunk, lowest bit of byte 0 first. */
export class Bitfield {
  readonly bits: Uint8Array
  constructor(
    readonly length: number,
    bits?: Uint8Array,
  ) {
    const bytes = Math.ceil(length / 8)
    if (bits !== undefined && bits.length !== bytes)
      throw new ProtocolError(`bitfield of ${length} chunks must be ${bytes} bytes, got ${bits.length}`)
    this.bits = bits ?? new Uint8Array(bytes)
  }
  has(i: number): boolean {
    return i >= 0 && i < this.length && ((this.bits[i >> 3] as number) & (1 << (i & 7))) !== 0
  }
  set(i: number): void {
    if (i < 0 || i >= this.length) return
    this.bits[i >> 3] = (this.bits[i >> 3] as number) | (1 << (i & 7))
  }
  count(): number {
    let n = 0
    for (let i = 0; i < this.length; i++) if (this.has(i)) n++
    return n
  }
  complete(): boolean {
    return this.count() === this.length
  }
}
