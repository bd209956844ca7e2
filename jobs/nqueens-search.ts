// The n-queens kernel: bitmask backtracking that counts the completions of a placed prefix.
// Bit c of a mask is column c. `left` and `right` hold the diagonals attacked in the current row.
import { throwIfAborted } from './validate.js'

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

/** How often the abort signal is polled, in visited nodes (a power of two minus one). */
const POLL_MASK = (1 << 20) - 1

/** Number of ways to complete a valid prefix to a full solution (1 when the prefix fills the board). */
export function countCompletions(n: number, prefix: readonly number[], signal?: AbortSignal): number {
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
  const last = rows - 1
  let solutions = 0
  let nodes = 0
  let d = 0
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
    if ((++nodes & POLL_MASK) === 0) throwIfAborted(signal)
  }
  return solutions
}
