// The benchmark workload: `primes` jobs over a contiguous range, as an HTTP job request and as the
// very unit inputs the coordinator would plan from it.
import { primes, type PrimesInput, type PrimesParams } from '../jobs/index.js'
import { decode, kindOf } from '../shared/index.js'
import type { RunOutcome } from '../worker/index.js'
import { parseParams } from '../coordinator/schema/index.js'
import type { SubmitRequest } from '../client/index.js'

/** `kindOf(primes)`: what the runner and the unit thread expect as `kind`. */
export const PRIMES_KIND = kindOf(primes)

export interface Workload {
  params: PrimesParams
  /** Exactly what `primes.split` gives the coordinator's planner. */
  inputs: PrimesInput[]
}

/** `units` units of `unitSize` numbers each, starting at `from`. */
export function primesWorkload(from: number, unitSize: number, units: number): Workload {
  const params = parseParams(primes, { from, to: from + unitSize * units, unitSize })
  const inputs = primes.split(params)
  if (inputs.length !== units) throw new Error(`expected ${units} units, the job type made ${inputs.length}`)
  return { params, inputs }
}

/**
 * The POST /v1/jobs body for a workload at the given redundancy. Every unit takes its quorum
 * (`spotCheckRate` 1: no unit accepted alone once a daemon has earned trust), so figures stay
 * comparable from run to run.
 */
export function jobRequest(w: Workload, quorum: number, maxReplicas: number): SubmitRequest<'primes'> {
  return {
    type: 'primes',
    version: primes.version,
    params: w.params,
    redundancy: { quorum, maxReplicas, spotCheckRate: 1 },
  }
}

/** The job's answer, merged from unit outcomes run outside the platform (to cross-check the platform). */
export function primeCount(outcomes: readonly RunOutcome[]): number {
  let count = 0
  for (const o of outcomes) count += primes.parseOutput(decode(o.output)).count
  return count
}

/** The `count` of a completed primes job's stored result. */
export function resultCount(result: unknown): number {
  const count = (result as { count?: unknown } | undefined)?.count
  if (typeof count !== 'number') throw new Error(`job result has no count: ${JSON.stringify(result)}`)
  return count
}
