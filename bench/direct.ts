// The baseline: unit inputs run straight on a piscina pool (the worker's own runner and unit thread),
// all submitted at once, with no coordinator, network, signing or storage in between.
import type { Runner, RunOutcome } from '../worker/index.js'
import { now } from './stats.js'
import { PRIMES_KIND } from './workload.js'

export interface DirectRun {
  ms: number
  outcomes: RunOutcome[]
}

/** `inputs` of job type `kind` (default: primes) all at once on `runner`. */
export async function runDirect(
  runner: Runner,
  inputs: readonly unknown[],
  kind: string = PRIMES_KIND,
): Promise<DirectRun> {
  const started = now()
  // One AbortController per unit, as the worker daemon has (one shared signal would collect a listener per task).
  const outcomes = await Promise.all(
    inputs.map((input) => runner.run({ kind, input }, new AbortController().signal)),
  )
  return { ms: now() - started, outcomes }
}
