// The primes kernel: a segmented, odd-only sieve of Eratosthenes counting primes in [from, to).
// Index j of a segment stands for the odd number `segLow + 2j`; a byte is 1 when that number is composite.
// Multiples of 3, 5, 7, 11 and 13 are stamped from a precomputed pattern instead of crossed off.
import { throwIfAborted } from './validate.js'
import type { KernelHooks } from './kernel-hooks.js'

/** Largest `to` the kernel supports; base primes then stay below 10^6. */
export const SIEVE_LIMIT = 1e12

/** Odd numbers per segment: 128 KiB of bytes, sized for a core's L2 cache (fastest when measured). */
const SEGMENT = 1 << 17
const WHEEL_PRIMES = [3, 5, 7, 11, 13]
/** Odd numbers after which the wheel pattern repeats: 3 * 5 * 7 * 11 * 13. */
const PERIOD = 15015
const BASE_LIMIT = Math.sqrt(SIEVE_LIMIT)

let wheel: Uint8Array | undefined
let basePrimes: Int32Array | undefined

/** Pattern of the odd numbers 2k+1 divisible by a wheel prime, long enough to copy any segment from. */
function wheelPattern(): Uint8Array {
  if (wheel !== undefined) return wheel
  const w = new Uint8Array(PERIOD + SEGMENT)
  for (const p of WHEEL_PRIMES) {
    for (let k = (p - 1) / 2; k < w.length; k += p) w[k] = 1
  }
  return (wheel = w)
}

/** Odd primes from 17 up to 10^6, by a plain odd-only sieve (a few milliseconds, computed once). */
function sievingPrimes(): Int32Array {
  if (basePrimes !== undefined) return basePrimes
  const half = BASE_LIMIT / 2
  const composite = new Uint8Array(half)
  const found: number[] = []
  for (let k = 1; k < half; k++) {
    if (composite[k] === 1) continue
    const p = 2 * k + 1
    if (p > WHEEL_PRIMES[WHEEL_PRIMES.length - 1]!) found.push(p)
    for (let m = (p * p - 1) / 2; m < half; m += p) composite[m] = 1
  }
  return (basePrimes = Int32Array.from(found))
}

/** How many of the sorted `primes` have a square below `to`. */
function primesBelowRoot(primes: Int32Array, to: number): number {
  let lo = 0
  let hi = primes.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (primes[mid]! * primes[mid]! < to) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** Count of ones in `seg[0..len)`, padding the tail to a whole word with ones. */
function countMarked(seg: Uint8Array, words: Uint32Array, len: number): number {
  const len4 = (len + 3) & ~3
  for (let j = len; j < len4; j++) seg[j] = 1
  let marked = 0
  const n = len4 >> 2
  // Each byte lane gains at most 1 per word, so 255 words fit in a lane before folding.
  for (let i = 0; i < n;) {
    const stop = Math.min(n, i + 255)
    let acc = 0
    for (; i < stop; i++) acc = (acc + words[i]!) | 0
    marked += (acc & 0xff) + ((acc >>> 8) & 0xff) + ((acc >>> 16) & 0xff) + (acc >>> 24)
  }
  return marked - (len4 - len)
}

/** Where a count stopped: `segment` whole segments done, `count` primes found in them (and 2). */
export interface SieveCheckpoint {
  segment: number
  count: number
}

/** Hooks of the host (all optional): pausing and throttling, progress, checkpoints. */
export type SieveHooks = KernelHooks<SieveCheckpoint>

function readCheckpoint(raw: unknown, segments: number): SieveCheckpoint | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined
  const { segment, count } = raw as Record<string, unknown>
  if (!Number.isSafeInteger(segment) || !Number.isSafeInteger(count)) return undefined
  if ((segment as number) < 0 || (segment as number) > segments || (count as number) < 0) return undefined
  return { segment: segment as number, count: count as number }
}

/** Number of primes p with from <= p < to, for integers 0 <= from <= to <= 10^12. */
export function countPrimes(from: number, to: number, hooksOrSignal?: AbortSignal | SieveHooks): number {
  const hooks: SieveHooks =
    hooksOrSignal === undefined || hooksOrSignal instanceof AbortSignal
      ? { signal: hooksOrSignal }
      : hooksOrSignal
  const signal = hooks.signal
  let count = from <= 2 && to > 2 ? 1 : 0
  const lo = from % 2 === 1 ? from : from + 1
  if (lo >= to) return count
  const total = Math.floor((to - lo + 1) / 2)
  const segments = Math.ceil(total / SEGMENT)
  const resumed = readCheckpoint(hooks.resumeFrom, segments)
  let first = 0
  if (resumed !== undefined) {
    first = resumed.segment * SEGMENT
    count = resumed.count
  }
  const pattern = wheelPattern()
  const primes = sievingPrimes()
  const next = new Int32Array(primesBelowRoot(primes, to))
  const seg = new Uint8Array(((Math.min(SEGMENT, total) + 3) & ~3) + 4)
  const words = new Uint32Array(seg.buffer)
  let active = 0
  // Resuming needs no more state: activation below finds each prime's first multiple in the segment.
  for (let start = first; start < total; start += SEGMENT) {
    throwIfAborted(signal)
    if (hooks.shouldYield?.() === true) throwIfAborted(AbortSignal.abort())
    const len = Math.min(SEGMENT, total - start)
    const segLow = lo + 2 * start
    const segEnd = segLow + 2 * len
    const offset = ((segLow - 1) / 2) % PERIOD
    seg.set(pattern.subarray(offset, offset + len))
    if (segLow <= WHEEL_PRIMES[WHEEL_PRIMES.length - 1]!) {
      if (segLow === 1) seg[0] = 1
      for (const p of WHEEL_PRIMES) if (p >= segLow && p < segEnd) seg[(p - segLow) / 2] = 0
    }
    // Activate the primes whose square falls below this segment's end.
    for (; active < next.length; active++) {
      const p = primes[active]!
      if (p * p >= segEnd) break
      const r = segLow % p
      let m = Math.max(p * p, r === 0 ? segLow : segLow + p - r)
      if (m % 2 === 0) m += p
      next[active] = (m - segLow) / 2
    }
    for (let i = 0; i < active; i++) {
      const p = primes[i]!
      let j = next[i]!
      for (; j < len; j += p) seg[j] = 1
      next[i] = j - len
    }
    count += len - countMarked(seg, words, len)
    if (hooks.checkpoint !== undefined || hooks.progress !== undefined) {
      const segment = start / SEGMENT + 1
      hooks.progress?.(segment / segments)
      hooks.checkpoint?.({ segment, count })
    }
  }
  return count
}
