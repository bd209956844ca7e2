// A piscina task: run one unit of a built-in job type and return its encoded output and digest.
import { builtinJobTypes } from '../jobs/index.js'
import { encode, sha256Hex, UnrecoverableError } from '../shared/index.js'
import type { RunOutcome, RunTask } from './runner.js'

export default async function runUnit(task: RunTask): Promise<RunOutcome> {
  const jobType = builtinJobTypes.get(task.kind)
  if (jobType === undefined)
    throw new UnrecoverableError(`job type ${task.kind} is not built into this worker`)
  const started = performance.now()
  const out = jobType.run(jobType.parseInput(task.input), {}) as unknown
  const computeMs = Math.round(performance.now() - started)
  const output = encode(out)
  return { output, digest: await sha256Hex(output), computeMs }
}
