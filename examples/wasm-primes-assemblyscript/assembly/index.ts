// A Cohort wasm job in AssemblyScript: count the primes in [from, to). Each record is 16 bytes, two
// little-endian i64 (what a `range` input gives); the output is the count as a little-endian u64,
// so `merge: "sum-u64"` adds the units up. Build: see ../README.md.
@external('cohort', 'progress')
declare function progress(permille: i32): void

/** Cohort copies each record into memory it gets from here. */
export function alloc(len: i32): i32 {
  return heap.alloc(<usize>len) as i32
}

/** Integer square root (no floats, so nothing depends on float rounding). */
function isqrt(n: u64): u64 {
  let r: u64 = 0
  let bit: u64 = 1 << 62
  while (bit > n) bit >>= 2
  while (bit != 0) {
    if (n >= r + bit) {
      n -= r + bit
      r = (r >> 1) + bit
    } else r >>= 1
    bit >>= 2
  }
  return r
}

function countPrimes(from: u64, to: u64): u64 {
  const lo: u64 = from < 2 ? 2 : from
  if (lo >= to) return 0
  const limit = <usize>isqrt(to - 1)
  // Primes up to sqrt(to) by a plain sieve, then the segment [lo, to) crossed off by them.
  const base = heap.alloc(limit + 1)
  memory.fill(base, 1, limit + 1)
  for (let i: usize = 2; i * i <= limit; i++) {
    if (load<u8>(base + i) != 0) for (let j = i * i; j <= limit; j += i) store<u8>(base + j, 0)
  }
  const n = <usize>(to - lo)
  const seg = heap.alloc(n)
  memory.fill(seg, 1, n)
  for (let p: usize = 2; p <= limit; p++) {
    if (load<u8>(base + p) == 0) continue
    const q = <u64>p
    let m: u64 = ((lo + q - 1) / q) * q
    if (m < q * q) m = q * q
    for (; m < to; m += q) store<u8>(seg + <usize>(m - lo), 0)
  }
  let count: u64 = 0
  for (let i: usize = 0; i < n; i++) count += load<u8>(seg + i)
  return count
}

/** One record in, one output out: returns the output's address << 32 | its length. */
export function run(ptr: i32, len: i32): i64 {
  if (len != 16) unreachable()
  const count = countPrimes(load<u64>(<usize>ptr), load<u64>(<usize>ptr, 8))
  progress(1000)
  const out = heap.alloc(8)
  store<u64>(out, count)
  return (<i64>out << 32) | 8
}
