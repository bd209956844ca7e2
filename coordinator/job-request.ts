// Parsing a submitter's job request: every refusal names the field and says what to send instead.
import { ValidationError, type AnyJobType } from '../shared/index.js'
import { MAX_UNIT_SECONDS } from './options.js'
import { sizeGiven } from './planner/choose-plan.js'
import { check } from './schema/check.js'
import { jobRequestSchema } from './schema/jobs.js'
import { parseParams } from './schema/params.js'

export interface JobRequest {
  jobType: AnyJobType
  /** Parsed once, here: the job type's defaults filled in. */
  params: unknown
  /** The submitter set the job type's unit size param (`unitSize`, `depth`): the planner keeps it. */
  sizeGiven: boolean
  /** The submitter's target seconds per unit (`plan.unitSeconds`), when given. */
  unitSeconds?: number
  quorum: number
  maxReplicas: number
  /** Credibility a unit's accepted result must reach. */
  minCredibility: number
  /** Chance that a result accepted alone is checked by other replicas (1: never accepted alone). */
  spotCheckRate: number
  priority: number
}

/** The deployment's defaults for what a job's `redundancy` leaves out, and its planner's floor. */
export interface RedundancyDefaults {
  quorum: number
  minCredibility: number
  spotCheckRate: number
  /** Smallest `plan.unitSeconds` a job may ask for (`plannerMinUnitSeconds`). */
  minUnitSeconds: number
}

export const MAX_QUORUM = 10
export const MAX_REPLICAS = 30

export function parseJobRequest(
  body: unknown,
  find: (name: string, version?: number) => AnyJobType | undefined,
  defaults: RedundancyDefaults,
): JobRequest {
  const b = check(jobRequestSchema, body, '')
  const jobType = find(b.type, b.version)
  if (jobType === undefined) {
    throw new ValidationError(
      'type',
      `unknown job type "${b.type}"${b.version === undefined ? '' : ` version ${b.version}`}; GET /v1/job-types lists them`,
    )
  }
  const params: unknown = parseParams(jobType, b.params ?? {})
  const r = b.redundancy ?? {}
  const quorum = r.quorum ?? defaults.quorum
  if (r.maxReplicas !== undefined && r.maxReplicas < quorum)
    throw new ValidationError('redundancy.maxReplicas', `must be at least the quorum (${quorum})`)
  const unitSeconds = b.plan?.unitSeconds
  if (unitSeconds !== undefined && unitSeconds < defaults.minUnitSeconds)
    throw new ValidationError(
      'plan.unitSeconds',
      `must be a number from ${defaults.minUnitSeconds} to ${MAX_UNIT_SECONDS} on this coordinator`,
    )
  return {
    jobType,
    params,
    sizeGiven: sizeGiven(jobType, b.params),
    ...(unitSeconds === undefined ? {} : { unitSeconds }),
    quorum,
    maxReplicas: r.maxReplicas ?? Math.min(MAX_REPLICAS, 2 * quorum + 1),
    minCredibility: r.minCredibility ?? defaults.minCredibility,
    spotCheckRate: r.spotCheckRate ?? defaults.spotCheckRate,
    priority: b.priority ?? 0,
  }
}
