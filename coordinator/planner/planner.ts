// The planner: the one place that turns a job into units. At submission (the HTTP pre-check) it
// chooses the unit size from the job type's estimate, the speeds workers reported and the threads
// online, and splits the jobs that name content (which must be checked before the job is accepted);
// the pipeline's plan step then asks it for the units of the stored, resized params. A job that
// names content is split twice, once per step: the plan step may run on another coordinator after a
// crash, and its inputs (up to megabytes for a blob) are not worth storing twice in Redis; the
// second split re-reads only the content's manifest or blob and is linear in the units.
import { ValidationError, kindOf, type AnyJobType } from '../../shared/index.js'
import type { DatasetStore } from '../content/dataset-store.js'
import type { ContentStore } from '../modules/content-store.js'
import type { CoordinatorTuning } from '../options.js'
import type { SpeedStore } from '../store/speed-store.js'
import { choosePlan, type PlanView } from './choose-plan.js'

/** Where the content a job type's `planResources` names is looked up. */
export interface PlanSources {
  /** Input blobs: their bytes. */
  blobs: ContentStore
  /** Datasets: their encoded manifest, by root (the job type decodes it with `decodeManifest`). */
  datasets: DatasetStore
}

/**
 * The content `jobType.planResources(params)` names that is stored, by hash: a blob's bytes, or a
 * dataset's encoded manifest. A missing one is left out (the job type's `split` names the param).
 */
export async function loadPlanResources(
  jobType: AnyJobType,
  params: unknown,
  sources: PlanSources,
): Promise<Map<string, Uint8Array>> {
  const found = new Map<string, Uint8Array>()
  for (const hash of jobType.planResources?.(params) ?? []) {
    const bytes = (await sources.blobs.get(hash)) ?? (await sources.datasets.manifest(hash))
    if (bytes !== undefined) found.set(hash, bytes)
  }
  return found
}

/**
 * The job type's estimate of one unit's compute time, in whole ms (at least 1, at most 30 days): the
 * base of the lease lifetime bound and of the credit for a validated result.
 */
export function unitEstimateMs(unitSeconds: number): number {
  if (!Number.isFinite(unitSeconds) || unitSeconds <= 0) return 1
  return Math.min(30 * 24 * 3600_000, Math.max(1, Math.ceil(unitSeconds * 1000)))
}

/** Job types whose units can be known only by splitting: they name content to check at submission. */
const splitsAtSubmit = (t: AnyJobType): boolean =>
  t.planResources !== undefined || t.resources !== undefined || t.content !== undefined

export interface PlannerInit {
  sources: PlanSources
  speeds: Pick<SpeedStore, 'speeds'>
  tuning: CoordinatorTuning
}

export interface PlanRequest {
  jobType: AnyJobType
  /** Parsed params (defaults filled in). */
  params: unknown
  /** The submitter set the job type's size param: it stands. */
  sizeGiven: boolean
  quorum: number
  /** The submitter's target seconds per unit (`plan.unitSeconds`), else the coordinator's. */
  unitSeconds?: number
  /** Whether the submitter may use content `hash`; other content is missing to it. */
  mayUse(hash: string): Promise<boolean>
}

export interface Plan {
  /** The params to store: the chosen unit size filled in. */
  params: unknown
  view: PlanView
  /** The units' inputs, for a job type that names content (split at submission). */
  inputs?: unknown[]
}

export interface Planner {
  /** Choose the unit size of a submitted job; ValidationErrors name the field. */
  plan(req: PlanRequest): Promise<Plan>
  /** The units of a job with these stored params, and the estimate of one unit in ms. */
  units(jobType: AnyJobType, params: unknown): Promise<{ inputs: unknown[]; unitMs: number }>
}

export function createPlanner(init: PlannerInit): Planner {
  const { sources, tuning } = init

  const tooMany = (t: AnyJobType, units: number): void => {
    if (units > t.maxUnits)
      throw new ValidationError(
        'params',
        `this job would split into ${units} units; the limit is ${t.maxUnits}`,
      )
  }

  return {
    async plan(req) {
      const { jobType } = req
      const loaded = await loadPlanResources(jobType, req.params, sources)
      const own = new Map<string, Uint8Array>()
      for (const [hash, bytes] of loaded) if (await req.mayUse(hash)) own.set(hash, bytes)
      const resource = (hash: string): Uint8Array | undefined => own.get(hash)
      const known = await init.speeds.speeds(kindOf(jobType), Date.now())
      const threads = Math.max(tuning.plannerThreads, known.workersOnline * tuning.plannerThreadsPerWorker)
      const chosen = choosePlan(
        jobType,
        req.params,
        req.sizeGiven,
        {
          unitSeconds: req.unitSeconds ?? tuning.plannerUnitSeconds,
          minUnitSeconds: tuning.plannerMinUnitSeconds,
          unitsPerThread: tuning.plannerUnitsPerThread,
        },
        {
          ...(known.speedFactor === undefined ? {} : { speedFactor: known.speedFactor }),
          threads,
          quorum: req.quorum,
        },
        resource,
      )
      tooMany(jobType, chosen.cost.units)
      // A missing blob or dataset, or content that gives too many or too large units, is refused
      // now rather than failing the job at planning; and the content its units fetch is known.
      const inputs = splitsAtSubmit(jobType)
        ? (jobType.split(chosen.params, resource) as unknown[])
        : undefined
      const units = Math.max(1, inputs?.length ?? chosen.cost.units)
      tooMany(jobType, units)
      return {
        params: chosen.params,
        view: { units, ...chosen.view },
        ...(inputs === undefined ? {} : { inputs }),
      }
    },

    async units(jobType, params) {
      const loaded = await loadPlanResources(jobType, params, sources)
      const resource = (hash: string): Uint8Array | undefined => loaded.get(hash)
      const inputs = jobType.split(params, resource) as unknown[]
      return { inputs, unitMs: unitEstimateMs(jobType.estimateCost(params, resource).unitSeconds) }
    },
  }
}
