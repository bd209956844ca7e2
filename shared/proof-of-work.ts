// Hashcash over SHA-256 for volunteer sign-up: find a nonce such that
// SHA-256(prefix ‖ nonce) starts with `bits` zero bits, where prefix = SHA-256(tag ‖ challenge ‖
// identity public key ‖ NATS user key). The prefix binds the work to one coordinator-issued,
// single-use challenge and to one identity, so it can be neither precomputed nor reused.
//
// The 40-byte message is one SHA-256 block, hashed by the few lines below rather than WebCrypto:
// `crypto.subtle.digest` costs a promise per call (about 120k hashes/s in Node, 20 times slower
// than this loop), which would make an honest browser pay far more than an attacker with native code.
import { concatBytes, fromBase64Url, utf8 } from './bytes.js'
import { TimeoutError } from './errors.js'

/** Most bits a challenge may ask for (only the first 32-bit word of the hash is compared). */
export const MAX_POW_BITS = 32

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
  0xc67178f2,
])
/**
 * SHA-256 of one padded 64-byte block given as 16 big-endian words; writes the 8 hash words to `out`.
 * Plain locals and no allocation: this loop is the whole cost of the proof of work.
 */
function compress(block: Uint32Array, w: Uint32Array, out: Uint32Array): void {
  for (let i = 0; i < 16; i++) w[i] = block[i]!
  for (let i = 16; i < 64; i++) {
    const x = w[i - 15]!
    const y = w[i - 2]!
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3)
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10)
    w[i] = (w[i - 16]! + s0 + w[i - 7]! + s1) | 0
  }
  let a = 0x6a09e667
  let b = 0xbb67ae85
  let c = 0x3c6ef372
  let d = 0xa54ff53a
  let e = 0x510e527f
  let f = 0x9b05688c
  let g = 0x1f83d9ab
  let h = 0x5be0cd19
  for (let i = 0; i < 64; i++) {
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))
    const t1 = (h + s1 + ((e & f) ^ (~e & g)) + K[i]! + w[i]!) | 0
    const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))
    const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0
    h = g
    g = f
    f = e
    e = (d + t1) | 0
    d = c
    c = b
    b = a
    a = (t1 + t2) | 0
  }
  out[0] = (0x6a09e667 + a) >>> 0
  out[1] = (0xbb67ae85 + b) >>> 0
  out[2] = (0x3c6ef372 + c) >>> 0
  out[3] = (0xa54ff53a + d) >>> 0
  out[4] = (0x510e527f + e) >>> 0
  out[5] = (0x9b05688c + f) >>> 0
  out[6] = (0x1f83d9ab + g) >>> 0
  out[7] = (0x5be0cd19 + h) >>> 0
}

/** A reusable hasher of prefix ‖ nonce (40 bytes) for one 32-byte prefix. */
function hasher(prefix: Uint8Array): (hi: number, lo: number) => Uint32Array {
  if (prefix.length !== 32) throw new TypeError('proof-of-work prefix must be 32 bytes')
  const block = new Uint32Array(16)
  const view = new DataView(prefix.buffer, prefix.byteOffset, 32)
  for (let i = 0; i < 8; i++) block[i] = view.getUint32(i * 4)
  block[10] = 0x80000000
  block[15] = 40 * 8
  const w = new Uint32Array(64)
  const out = new Uint32Array(8)
  return (hi, lo) => {
    block[8] = hi
    block[9] = lo
    compress(block, w, out)
    return out
  }
}

/** SHA-256(prefix ‖ nonce) for a 32-byte prefix and an 8-byte nonce (exposed for tests). */
export function powHash(prefix: Uint8Array, nonce: Uint8Array): Uint8Array {
  if (nonce.length !== 8) throw new TypeError('proof-of-work nonce must be 8 bytes')
  const n = new DataView(nonce.buffer, nonce.byteOffset, 8)
  const words = hasher(prefix)(n.getUint32(0), n.getUint32(4))
  const out = new Uint8Array(32)
  const view = new DataView(out.buffer)
  for (let i = 0; i < 8; i++) view.setUint32(i * 4, words[i]!)
  return out
}

/** The prefix the work is bound to: SHA-256(tag ‖ challenge ‖ identity public key ‖ NATS user key). */
export async function powPrefix(
  challenge: string,
  publicKey: Uint8Array,
  natsKey: string,
): Promise<Uint8Array> {
  const input = concatBytes(
    utf8('cohort/v1/signup-pow\u0000'),
    fromBase64Url(challenge),
    publicKey,
    utf8(natsKey),
  )
  return new Uint8Array(await crypto.subtle.digest('SHA-256', input as Uint8Array<ArrayBuffer>))
}

function hex8(n: number): string {
  return (n >>> 0).toString(16).padStart(8, '0')
}

/** Whether `nonce` (16 hex digits) makes SHA-256(prefix ‖ nonce) start with `bits` zero bits. */
export function checkPow(prefix: Uint8Array, nonce: string, bits: number): boolean {
  if (!/^[0-9a-f]{16}$/.test(nonce) || bits < 0 || bits > MAX_POW_BITS) return false
  const head = hasher(prefix)(parseInt(nonce.slice(0, 8), 16), parseInt(nonce.slice(8), 16))[0]!
  return bits === 0 || Math.clz32(head) >= bits
}

export interface SolveOptions {
  /** Stops the search (the promise rejects with the signal's reason). */
  signal?: AbortSignal
  /** Gives up after this long (TimeoutError). Default: no limit. */
  timeoutMs?: number
  /** Hashes between two pauses that let the event loop run (a page stays responsive). Default 50000. */
  sliceHashes?: number
  /** Called between slices with the hashes tried so far. */
  onProgress?: (tried: number) => void
}

const pause = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0))

/** Finds a nonce for `prefix` and `bits`; about 2^bits hashes on average. */
export async function solvePow(
  prefix: Uint8Array,
  bits: number,
  opts: SolveOptions = {},
): Promise<{ nonce: string; tried: number }> {
  if (!Number.isInteger(bits) || bits < 0 || bits > MAX_POW_BITS)
    throw new RangeError(`proof-of-work bits must be an integer in 0..${MAX_POW_BITS}`)
  const hash = hasher(prefix)
  const slice = opts.sliceHashes ?? 50_000
  const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs
  let tried = 0
  for (let hi = 0; hi <= 0xffffffff; hi++) {
    for (let lo = 0; lo <= 0xffffffff;) {
      const end = Math.min(0xffffffff, lo + slice - 1)
      for (; lo <= end; lo++) {
        tried++
        if (bits === 0 || Math.clz32(hash(hi, lo)[0]!) >= bits) return { nonce: hex8(hi) + hex8(lo), tried }
      }
      opts.onProgress?.(tried)
      await pause()
      opts.signal?.throwIfAborted()
      if (Date.now() > deadline)
        throw new TimeoutError(`no proof of work of ${bits} bits found in ${opts.timeoutMs} ms`)
    }
  }
  throw new TimeoutError('proof-of-work search space exhausted')
}
