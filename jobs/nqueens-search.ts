// The n-queens kernel: bitmask backtracking that counts the completions of a placed prefix.
// Bit c of a mask is column c. `left` and `right` hold the diagonals attacked in the current row.
import { throwIfAborted } from './validate.js'
import type { KernelHooks } from './kernel-hooks.js'

/** Queens placed so far, as masks of the columns and diagonals they attack in the next row. */
interface Board {
  cols: number
  left: number
  right: number
}

/** Place `prefix[r]` in row r for each r; undefined when the placement is not valid. */
export function placePrefix(n: number, prefix: readonly number[]): Board | undefined {
  const full = (1 << n) - 1
  let cols = 0
  let left = 0
  let right = 0
  for (const c of prefix) {
    const bit = 1 << c
    if (c < 0 || c >= n || ((cols | left | right) & bit) !== 0) return undefined
    cols |= bit
    left = ((left | bit) << 1) & full
    right = (right | bit) >>> 1
  }
  return { cols, left, right }
}

/** Every valid placement of the first `depth` rows, in lexicographic order of columns. */
export function validPrefixes(n: number, depth: number): number[][] {
  const out: number[][] = []
  const walk = (prefix: number[]): void => {
    if (prefix.length === depth) {
      out.push(prefix.slice())
      return
    }
    for (let c = 0; c < n; c++) {
      prefix.push(c)
      if (placePrefix(n, prefix) !== undefined) walk(prefix)
      prefix.pop()
    }
  }
  walk([])
  return out
}

function popcount(x: number): number {
  x = x - ((x >>> 1) & 0x55555555)
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333)
  return (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff
}

/** How often the abort signal and the host's hooks are polled, in visited nodes (a power of two minus one). */
const POLL_MASK = (1 << 18) - 1

/** Where a search stopped: the explicit stack and the solutions counted so far. */
export interface SearchCheckpoint {
  d: number
  solutions: number
  free: number[]
  cols: number[]
  left: number[]
  right: number[]
}

/** Hooks of the host (all optional): pausing and throttling, progress, checkpoints. */
export type SearchHooks = KernelHooks<SearchCheckpoint>

function readCheckpoint(raw: unknown, rows: number, full: number): SearchCheckpoint | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined
  const r = raw as Record<string, unknown>
  const ints = (v: unknown): v is number[] =>
    Array.isArray(v) && v.length === rows && v.every((x) => Number.isInteger(x) && x >= 0 && x <= full)
  if (!Number.isInteger(r['d']) || (r['d'] as number) < 0 || (r['d'] as number) >= rows) return undefined
  if (!Number.isSafeInteger(r['solutions']) || (r['solutions'] as number) < 0) return undefined
  if (!ints(r['free']) || !ints(r['cols']) || !ints(r['left']) || !ints(r['right'])) return undefined
  return raw as SearchCheckpoint
}

/** Number of ways to complete a valid prefix to a full solution (1 when the prefix fills the board). */
export function countCompletions(
  n: number,
  prefix: readonly number[],
  hooksOrSignal?: AbortSignal | SearchHooks,
): number {
  const hooks: SearchHooks =
    hooksOrSignal === undefined || hooksOrSignal instanceof AbortSignal
      ? { signal: hooksOrSignal }
      : hooksOrSignal
  const signal = hooks.signal
  throwIfAborted(signal)
  const board = placePrefix(n, prefix)
  if (board === undefined) return 0
  const rows = n - prefix.length
  if (rows === 0) return 1
  const full = (1 << n) - 1
  // An explicit stack, one entry per remaining row: free squares still to try, and the attacks.
  const free = new Int32Array(rows)
  const cols = new Int32Array(rows)
  const left = new Int32Array(rows)
  const right = new Int32Array(rows)
  cols[0] = board.cols
  left[0] = board.left
  right[0] = board.right
  free[0] = full & ~(board.cols | board.left | board.right)
  const firstRow = popcount(free[0])
  const last = rows - 1
  let solutions = 0
  let nodes = 0
  let d = 0
  const resumed = readCheckpoint(hooks.resumeFrom, rows, full)
  if (resumed !== undefined) {
    free.set(resumed.free)
    cols.set(resumed.cols)
    left.set(resumed.left)
    right.set(resumed.right)
    d = resumed.d
    solutions = resumed.solutions
  }
  const hooked = hooks.shouldYield !== undefined || hooks.checkpoint !== undefined
  while (d >= 0) {
    const f = free[d]!
    if (d === last) {
      solutions += popcount(f)
      d--
      continue
    }
    if (f === 0) {
      d--
      continue
    }
    const bit = f & -f
    free[d] = f ^ bit
    const c = cols[d]! | bit
    const l = ((left[d]! | bit) << 1) & full
    const r = (right[d]! | bit) >>> 1
    d++
    cols[d] = c
    left[d] = l
    right[d] = r
    free[d] = full & ~(c | l | r)
    if ((++nodes & POLL_MASK) === 0) {
      throwIfAborted(signal)
      if (hooked) {
        // The stack here is a complete state: resuming at this very point gives the same count.
        if (hooks.shouldYield?.() === true) throwIfAborted(AbortSignal.abort())
        hooks.progress?.(firstRow === 0 ? 1 : 1 - (popcount(free[0]) + 1) / firstRow)
        hooks.checkpoint?.({
          d,
          solutions,
          free: Array.from(free),
          cols: Array.from(cols),
          left: Array.from(left),
          right: Array.from(right),
        })
      }
    }
  }
  return solutions
}
