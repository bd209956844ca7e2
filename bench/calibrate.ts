// Calibration: the primes `unitSize` whose unit takes about a given time on this machine. The sieve has
// a fixed cost per unit besides its cost per number, so the size is found by a few rounds of
// "time one unit directly, scale the size by target / measured".
import { primes } from '../jobs/index.js'
import { median, now } from './stats.js'

export interface Calibration {
  targetMs: number
  unitSize: number
  /** Median time of one unit of `unitSize` at `from`, run directly on this thread. */
  measuredMs: number
}

/** Bounds of `primes` params.unitSize. */
const MIN_UNIT_SIZE = 1000
const MAX_UNIT_SIZE = 1e9
/** A first guess: about 3 ns per number near 10^9. */
const MS_PER_NUMBER = 3e-6
const ROUNDS = 6
const TOLERANCE = 0.05

function timeUnit(from: number, unitSize: number, reps: number): number {
  const times: number[] = []
  for (let i = 0; i < reps; i++) {
    const started = now()
    primes.run({ from, to: from + unitSize }, {})
    times.push(now() - started)
  }
  return median(times)
}

/** Round to 3 significant digits, within the job type's bounds. */
function tidy(size: number): number {
  const scale = 10 ** Math.max(0, Math.floor(Math.log10(size)) - 2)
  return Math.min(MAX_UNIT_SIZE, Math.max(MIN_UNIT_SIZE, Math.round(size / scale) * scale))
}

export function calibrateUnitSize(targetMs: number, from: number): Calibration {
  // Enough repetitions for about 50 ms of timing per round, at least 3.
  const reps = Math.max(3, Math.ceil(50 / targetMs))
  timeUnit(from, MIN_UNIT_SIZE, 3) // the first call builds the sieve's tables
  let unitSize = tidy(targetMs / MS_PER_NUMBER)
  let measuredMs = timeUnit(from, unitSize, reps)
  for (let round = 1; round < ROUNDS && Math.abs(measuredMs / targetMs - 1) > TOLERANCE; round++) {
    const next = tidy(unitSize * (targetMs / measuredMs))
    if (next === unitSize) break
    unitSize = next
    measuredMs = timeUnit(from, unitSize, reps)
  }
  return { targetMs, unitSize, measuredMs }
}
