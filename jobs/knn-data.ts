// Deterministic bytes for `knn@1`: the queries every unit generates for itself, and synthetic datasets
// for tests and benchmarks. A counter-based generator (splitmix32's mixer over a Weyl sequence), so
// word i of a stream is computed directly and every runtime produces the same bytes.

/** The golden-ratio increment of the Weyl sequence. */
const GAMMA = 0x9e3779b9

/** MurmurHash3's 32-bit finalizer: a bijection on uint32 with good avalanche. */
export function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b)
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35)
  return (x ^ (x >>> 16)) >>> 0
}

/**
 * Fill `out` with the stream whose start is `state`: word i is mix32(state + (i + 1) * GAMMA), its
 * bytes taken lowest first.
 */
function fillStream(out: Uint8Array, state: number): void {
  const whole = out.length & ~3
  let s = state >>> 0
  let i = 0
  for (; i < whole; i += 4) {
    s = (s + GAMMA) >>> 0
    const w = mix32(s)
    out[i] = w & 0xff
    out[i + 1] = (w >>> 8) & 0xff
    out[i + 2] = (w >>> 16) & 0xff
    out[i + 3] = w >>> 24
  }
  if (i < out.length) {
    let w = mix32((s + GAMMA) >>> 0)
    for (; i < out.length; i++, w >>>= 8) out[i] = w & 0xff
  }
}

/**
 * Query `j` of a job with this `seed`: `out.length` bytes (the dimension) of the stream that starts
 * at mix32(seed XOR mix32(j)). Distinct j give distinct streams for one seed.
 */
export function knnQuery(out: Uint8Array, seed: number, j: number): void {
  fillStream(out, mix32((seed ^ mix32(j)) >>> 0))
}

/** A synthetic dataset of `rows` rows of `dim` bytes: the stream that starts at mix32(seed). */
export function knnDataset(rows: number, dim: number, seed: number): Uint8Array {
  const out = new Uint8Array(rows * dim)
  fillStream(out, mix32(seed >>> 0))
  return out
}
