// Small numeric helpers shared by the benchmarks.

/** The median of `xs` (the mean of the two middle values for an even count). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error('median of an empty list')
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

/** The p-th percentile (nearest rank) of `xs`. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) throw new Error('percentile of an empty list')
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!
}

/** Epoch milliseconds with sub-millisecond resolution, comparable across threads (unlike performance.now()). */
export const now = (): number => performance.timeOrigin + performance.now()

/** Run `f` and return how long it took in ms, with its value. */
export async function timed<T>(f: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = now()
  const value = await f()
  return { ms: now() - started, value }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Round to `digits` decimals (for printing and JSON). */
export function round(x: number, digits = 2): number {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

/** Medians of a baseline's and a platform's runs, and their ratio platform / baseline. */
export function medianRatio(
  baselineMs: readonly number[],
  platformMs: readonly number[],
): { baselineMedianMs: number; platformMedianMs: number; ratio: number } {
  const baselineMedianMs = median(baselineMs)
  const platformMedianMs = median(platformMs)
  return { baselineMedianMs, platformMedianMs, ratio: platformMedianMs / baselineMedianMs }
}
