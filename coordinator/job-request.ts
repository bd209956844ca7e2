// Parsing a submitter's job request: every refusal names the field and says what to send instead.
import { ValidationError, type AnyJobType } from '../shared/index.js'
import { MAX_CREDIBILITY, MAX_UNIT_SECONDS, MIN_CREDIBILITY } from './options.js'
import { sizeGiven } from './planner/choose-plan.js'

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

const REDUNDANCY = new Set(['quorum', 'maxReplicas', 'minCredibility', 'spotCheckRate'])

const KNOWN = new Set(['type', 'version', 'params', 'redundancy', 'priority', 'plan'])
export const MAX_QUORUM = 10
export const MAX_REPLICAS = 30

function intIn(field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new ValidationError(field, `must be an integer from ${min} to ${max}`)
  }
  return v
}

function numberIn(field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
    throw new ValidationError(field, `must be a number from ${min} to ${max}`)
  }
  return v
}

export function parseJobRequest(
  body: unknown,
  find: (name: string, version?: number) => AnyJobType | undefined,
  defaults: RedundancyDefaults,
): JobRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ValidationError('body', 'must be a JSON object like {"type":"primes","params":{"to":1000000}}')
  }
  const b = body as Record<string, unknown>
  for (const k of Object.keys(b)) if (!KNOWN.has(k)) throw new ValidationError(k, 'unknown field')
  if (typeof b['type'] !== 'string' || b['type'] === '')
    throw new ValidationError('type', 'must name a job type')
  const version = b['version'] === undefined ? undefined : intIn('version', b['version'], 1, 999_999)
  const jobType = find(b['type'], version)
  if (jobType === undefined) {
    throw new ValidationError(
      'type',
      `unknown job type "${b['type']}"${version === undefined ? '' : ` version ${version}`}; GET /v1/job-types lists them`,
    )
  }
  const params = jobType.parseParams(b['params'] ?? {}) as unknown
  let quorum = defaults.quorum
  let maxReplicas: number | undefined
  let minCredibility = defaults.minCredibility
  let spotCheckRate = defaults.spotCheckRate
  if (b['redundancy'] !== undefined) {
    const r = b['redundancy']
    if (typeof r !== 'object' || r === null || Array.isArray(r)) {
      throw new ValidationError(
        'redundancy',
        'must be an object like {"quorum":2,"maxReplicas":5,"minCredibility":0.9999,"spotCheckRate":0.1}',
      )
    }
    const rr = r as Record<string, unknown>
    for (const k of Object.keys(rr)) {
      if (!REDUNDANCY.has(k)) throw new ValidationError(`redundancy.${k}`, 'unknown field')
    }
    if (rr['quorum'] !== undefined) quorum = intIn('redundancy.quorum', rr['quorum'], 1, MAX_QUORUM)
    if (rr['maxReplicas'] !== undefined) {
      maxReplicas = intIn('redundancy.maxReplicas', rr['maxReplicas'], quorum, MAX_REPLICAS)
    }
    if (rr['minCredibility'] !== undefined) {
      const v = rr['minCredibility']
      minCredibility = numberIn('redundancy.minCredibility', v, MIN_CREDIBILITY, MAX_CREDIBILITY)
    }
    if (rr['spotCheckRate'] !== undefined) {
      spotCheckRate = numberIn('redundancy.spotCheckRate', rr['spotCheckRate'], 0, 1)
    }
  }
  const priority = b['priority'] === undefined ? 0 : intIn('priority', b['priority'], -100, 100)
  const unitSeconds = parsePlan(b['plan'], defaults.minUnitSeconds)
  return {
    jobType,
    params,
    sizeGiven: sizeGiven(jobType, b['params']),
    ...(unitSeconds === undefined ? {} : { unitSeconds }),
    quorum,
    maxReplicas: maxReplicas ?? Math.min(MAX_REPLICAS, 2 * quorum + 1),
    minCredibility,
    spotCheckRate,
    priority,
  }
}

/** The request's `plan`: `{"unitSeconds": s}`, the target time of one unit on a typical worker thread. */
function parsePlan(raw: unknown, minUnitSeconds: number): number | undefined {
  if (raw === undefined) return undefined
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new ValidationError('plan', 'must be an object like {"unitSeconds":3}')
  for (const k of Object.keys(raw))
    if (k !== 'unitSeconds') throw new ValidationError(`plan.${k}`, 'unknown field')
  const v = (raw as Record<string, unknown>)['unitSeconds']
  return v === undefined ? undefined : numberIn('plan.unitSeconds', v, minUnitSeconds, MAX_UNIT_SECONDS)
}
