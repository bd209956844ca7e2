// The end-to-end lines' baseline: the units a job was planned into, computed twice (what quorum 2
// costs at the least) straight on a piscina pool, and merged by the job type into the job's answer.
import { parseParams } from '../coordinator/schema/params.js'
import { builtinJobTypes } from '../jobs/index.js'
import type { JobRecord } from '../coordinator/index.js'
import { decode, type AnyJobType } from '../shared/index.js'
import type { Runner } from '../worker/index.js'
import { runDirect } from './direct.js'

export interface PlannedUnits {
  kind: string
  jobType: AnyJobType
  /** The job's effective params (the job type's defaults filled in), as the coordinator stored them. */
  params: unknown
  inputs: unknown[]
}

/**
 * The unit inputs of a submitted job, from its record: the job type's `split` of the params the
 * coordinator stored, checked against the number of units the coordinator planned.
 */
export function plannedUnits(record: JobRecord): PlannedUnits {
  const jobType = builtinJobTypes.get(record.kind)
  if (jobType === undefined) throw new Error(`job type ${record.kind} is not built in`)
  const params: unknown = parseParams(jobType, record.params)
  const inputs = jobType.split(params) as unknown[]
  if (!record.planned || inputs.length !== record.unitsTotal)
    throw new Error(
      `job ${record.id} was planned into ${record.unitsTotal} units, but ${record.kind}'s split of ` +
        `${JSON.stringify(record.params)} gives ${inputs.length}: the baseline would not compute the same units`,
    )
  return { kind: record.kind, jobType, params, inputs }
}

export interface BaselineRun {
  ms: number
  /** The job type's merge of the first copy's outputs: the job's answer. */
  result: unknown
}

/** Every unit twice, all at once on `runner`; both copies must agree. */
export async function runBaseline(runner: Runner, units: PlannedUnits): Promise<BaselineRun> {
  const n = units.inputs.length
  const run = await runDirect(runner, [...units.inputs, ...units.inputs], units.kind)
  for (let i = 0; i < n; i++)
    if (run.outcomes[i]?.digest !== run.outcomes[n + i]?.digest)
      throw new Error(`${units.kind} unit ${i} gave two different outputs on the baseline`)
  const outputs = run.outcomes.slice(0, n).map((o) => units.jobType.parseOutput(decode(o.output)) as unknown)
  return { ms: run.ms, result: units.jobType.merge(units.params, outputs) as unknown }
}
