// Which numbers of a small window are prime: the picture of a primes unit (a few hundred numbers,
// sieved on the page's main thread in well under a millisecond once the small primes are known).

/** Largest number the window may reach: the primes kernel's limit, 10^12. */
const LIMIT = 1e12
let small: Int32Array | undefined

/** Primes below 10^6 = sqrt(LIMIT), by a plain sieve, computed once. */
function smallPrimes(): Int32Array {
  if (small !== undefined) return small
  const n = Math.sqrt(LIMIT)
  const composite = new Uint8Array(n)
  const found: number[] = []
  for (let i = 2; i < n; i++) {
    if (composite[i] === 1) continue
    found.push(i)
    for (let m = i * i; m < n; m += i) composite[m] = 1
  }
  return (small = Int32Array.from(found))
}

/** flags[i] is 1 when `from + i` is prime, for 0 <= from and from + count <= 10^12. */
export function primeFlags(from: number, count: number): Uint8Array {
  const hi = Math.min(from + count, LIMIT)
  const flags = new Uint8Array(Math.max(0, hi - from)).fill(1)
  for (let i = 0; i < flags.length && from + i < 2; i++) flags[i] = 0
  for (const p of smallPrimes()) {
    if (p * p >= hi) break
    const r = from % p
    for (let m = Math.max(p * p, r === 0 ? from : from + p - r); m < hi; m += p) flags[m - from] = 0
  }
  return flags
}
