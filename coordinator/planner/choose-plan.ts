// The planner's choice, pure: how large a job's units should be, from the job type's cost estimate,
// the speed workers reported for the kind, and the worker threads known online.
import type { AnyJobType, CostEstimate, PlanResource } from '../../shared/index.js'

/**
 * Why the units have their size: `explicit`, the submitter set the job type's size param;
 * `target`, units of the target time (the coordinator's default or the job's `plan.unitSeconds`);
 * `spread`, smaller than the target so the job keeps the online threads busy; `floor`, as small as
 * the floor allows (`plannerMinUnitSeconds`): the job is too small to spread further; `fixed`, the
 * job type has no size the planner may choose.
 */
export type PlanReason = 'explicit' | 'target' | 'spread' | 'floor' | 'fixed'

/** The plan as stored with the job and shown by GET /v1/jobs/:id. */
export interface PlanView {
  units: number
  /** Expected seconds per unit on a typical worker thread: the estimate times `speedFactor`. */
  unitSeconds: number
  by: PlanReason
  /** Measured ms per estimated ms of this kind, reported by workers (1 when none has). */
  speedFactor: number
  /** Worker threads the planner counted online. */
  threads: number
}

export interface PlanPolicy {
  /** Target seconds per unit on a typical worker thread. */
  unitSeconds: number
  /** Floor of a unit's seconds, unless the whole job is smaller. */
  minUnitSeconds: number
  /** Units per online thread, divided by the quorum, that a job is spread over at least. */
  unitsPerThread: number
}

export interface PlanCapacity {
  /** Measured ms per estimated ms; undefined while no worker has reported. */
  speedFactor?: number
  threads: number
  quorum: number
}

export interface ChosenPlan {
  params: unknown
  cost: CostEstimate
  view: Omit<PlanView, 'units'>
}

/** A reported speed factor is trusted within these bounds only. */
const MIN_FACTOR = 1 / 16
const MAX_FACTOR = 16

const round = (x: number): number => Number(x.toPrecision(4))

/**
 * Choose the unit size of a job of `jobType` with parsed `params`. `explicit`: the submitter set
 * the job type's size param (`granularity.param`), which then stands. `resource` gives the content
 * the params name, when loaded (a dataset's size sharpens knn's estimate).
 */
export function choosePlan(
  jobType: AnyJobType,
  params: unknown,
  explicit: boolean,
  policy: PlanPolicy,
  capacity: PlanCapacity,
  resource?: PlanResource,
): ChosenPlan {
  const factor = Math.min(MAX_FACTOR, Math.max(MIN_FACTOR, capacity.speedFactor ?? 1))
  const known = { speedFactor: round(factor), threads: capacity.threads }
  const g = jobType.granularity
  const done = (p: unknown, by: PlanReason): ChosenPlan => {
    const cost = jobType.estimateCost(p, resource)
    return { params: p, cost, view: { unitSeconds: round(cost.unitSeconds * factor), by, ...known } }
  }
  if (g === undefined) return done(params, 'fixed')
  if (explicit) return done(params, 'explicit')
  // The total work is the same at any unit size; the planner's times are in estimated seconds.
  const base = jobType.estimateCost(params, resource)
  const total = base.units * base.unitSeconds
  const target = Math.max(policy.unitSeconds, policy.minUnitSeconds) / factor
  const minUnits = Math.max(1, Math.ceil((policy.unitsPerThread * capacity.threads) / capacity.quorum))
  const spread = total / minUnits
  if (spread >= target) return done(g.resize(params, target, resource), 'target')
  const floor = policy.minUnitSeconds / factor
  return spread > floor
    ? done(g.resize(params, spread, resource), 'spread')
    : done(g.resize(params, floor, resource), 'floor')
}

/** Whether the submitter's raw params set the job type's size param (then it always stands). */
export function sizeGiven(jobType: AnyJobType, rawParams: unknown): boolean {
  const param = jobType.granularity?.param
  return (
    param !== undefined &&
    typeof rawParams === 'object' &&
    rawParams !== null &&
    Object.hasOwn(rawParams, param) &&
    (rawParams as Record<string, unknown>)[param] !== undefined
  )
}
