// The knn kernel: exact k-nearest-neighbour search by a linear scan. Distances are squared L2 over
// unsigned bytes, at most 4096 * 255^2 < 2^31, so the sums stay int32 and are exact in every runtime.
import { knnQuery } from './knn-data.js'
import type { KernelHooks } from './kernel-hooks.js'
import { throwIfAborted } from './validate.js'

export interface KnnSearch {
  /** Rows of `dim` bytes, row-major; its length is a multiple of `dim`. Only read. */
  data: Uint8Array
  dim: number
  /** Neighbours per query, at most the number of rows. */
  k: number
  seed: number
  /** The queries `first`, …, `first + count - 1`. */
  first: number
  count: number
}

export interface KnnNeighbours {
  /** Row indices, `k` per query, nearest first; ties go to the lower row index. */
  ids: number[]
  /** Their squared distances. */
  dists: number[]
}

/** Bytes scanned between two calls to the host's hooks (about a quarter of a millisecond). */
const HOOK_BYTES = 256 * 1024
/** Above every distance: 4096 * 255^2 = 266,342,400. */
const FAR = 0x7fffffff

function stopIfAsked(hooks: KernelHooks<never>): void {
  throwIfAborted(hooks.signal)
  if (hooks.shouldYield?.() === true) throwIfAborted(AbortSignal.abort())
}

/**
 * The k nearest rows of `query` among rows [from, to), merged into the sorted `bestD`/`bestI` that
 * hold `n` entries; returns the new `n`. Rows arrive in increasing index, so a row whose distance
 * equals the k-th best never displaces it.
 */
function scanRows(
  s: KnnSearch,
  query: Uint8Array,
  from: number,
  to: number,
  bestD: Int32Array,
  bestI: Int32Array,
  n: number,
): number {
  const { data, dim, k } = s
  const whole = dim & ~3
  let worst = n === k ? bestD[k - 1]! : FAR
  for (let r = from, base = from * dim; r < to; r++, base += dim) {
    // Four bytes a step (about a quarter faster than one in V8), then the rest of the row.
    let sum = 0
    let d = 0
    for (; d < whole; d += 4) {
      const i = base + d
      const a = data[i]! - query[d]!
      const b = data[i + 1]! - query[d + 1]!
      const c = data[i + 2]! - query[d + 2]!
      const e = data[i + 3]! - query[d + 3]!
      sum = (sum + a * a + b * b + c * c + e * e) | 0
    }
    for (; d < dim; d++) {
      const x = data[base + d]! - query[d]!
      sum = (sum + x * x) | 0
    }
    if (sum >= worst) continue
    let p = n < k ? n++ : k - 1
    for (; p > 0 && bestD[p - 1]! > sum; p--) {
      bestD[p] = bestD[p - 1]!
      bestI[p] = bestI[p - 1]!
    }
    bestD[p] = sum
    bestI[p] = r
    if (n === k) worst = bestD[k - 1]!
  }
  return n
}

/**
 * For each query, the `k` rows nearest to it, ordered by (distance, row index). Calls the hooks every
 * HOOK_BYTES of data and throws an AbortError when the signal fired or `shouldYield` says stop.
 */
export function searchKnn(s: KnnSearch, hooks: KernelHooks<never> = {}): KnnNeighbours {
  const rows = s.data.length / s.dim
  const step = Math.max(1, Math.floor(HOOK_BYTES / s.dim))
  const query = new Uint8Array(s.dim)
  const bestD = new Int32Array(s.k)
  const bestI = new Int32Array(s.k)
  const ids: number[] = []
  const dists: number[] = []
  for (let j = 0; j < s.count; j++) {
    knnQuery(query, s.seed, s.first + j)
    let n = 0
    for (let r = 0; r < rows; r += step) {
      stopIfAsked(hooks)
      hooks.progress?.((j + r / rows) / s.count)
      n = scanRows(s, query, r, Math.min(rows, r + step), bestD, bestI, n)
    }
    for (let i = 0; i < s.k; i++) {
      ids.push(bestI[i]!)
      dists.push(bestD[i]!)
    }
  }
  hooks.progress?.(1)
  return { ids, dists }
}
