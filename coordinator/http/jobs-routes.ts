// The submitter's API: submit, watch, fetch the result, cancel; list job types.
import { Router } from '@koa/router'
import {
  randomId,
  type JobView,
  type RevisionView,
  ValidationError,
  type AnyJobType,
} from '../../shared/index.js'
import { parseJobRequest } from '../job-request.js'
import type { CoordinatorTuning } from '../options.js'
import type { Pipeline } from '../pipeline.js'
import type { Planner } from '../planner/planner.js'
import type { Uploads } from '../content/uploads.js'
import type { JobRecord, Store } from '../store/store.js'
import { callerOf, type Caller } from './auth.js'
import { readJsonBody } from './body.js'
import { HttpError, quotaExceeded } from './http-error.js'
import { jobLoader } from './job-access.js'

export interface JobsRoutesInit {
  store: Store
  /** Chooses the unit size and splits jobs that name content (blobs, datasets). */
  planner: Pick<Planner, 'plan'>
  pipeline: Pipeline
  tuning: CoordinatorTuning
  jobTypes: ReadonlyMap<string, AnyJobType>
  /** Who holds which upload: a job may name only content its owner uploaded. */
  uploads: Uploads
}

/** A job's revisions as the API shows them (times as ISO strings). */
function revisionsView(j: JobRecord): RevisionView[] {
  return j.revisions.map((r) => ({
    at: new Date(r.at).toISOString(),
    reason: r.reason,
    units: r.units,
    ...(r.revisedAt === undefined ? {} : { revisedAt: new Date(r.revisedAt).toISOString() }),
    ...(r.changed === undefined ? {} : { changed: r.changed }),
  }))
}

/** What GET /v1/jobs/:id shows. */
export function jobView(j: JobRecord): JobView {
  const done = j.unitsValidated + j.unitsFailed
  return {
    id: j.id,
    type: j.type,
    version: j.version,
    state: j.state,
    params: j.params,
    redundancy: {
      quorum: j.quorum,
      maxReplicas: j.maxReplicas,
      minCredibility: j.minCredibility,
      spotCheckRate: j.spotCheckRate,
    },
    priority: j.priority,
    // The planner's choice of unit size, and why (docs/ARCHITECTURE.md, "Planner").
    ...(j.plan === undefined ? {} : { plan: j.plan }),
    units: {
      total: j.unitsTotal,
      validated: j.unitsValidated,
      failed: j.unitsFailed,
      pending: Math.max(0, j.unitsTotal - done),
      planned: j.planned,
    },
    extraReplicas: j.replicasExtra,
    progress: j.state === 'completed' ? 1 : j.unitsTotal === 0 ? 0 : j.unitsValidated / j.unitsTotal,
    createdAt: new Date(j.createdAt).toISOString(),
    updatedAt: new Date(j.updatedAt).toISOString(),
    ...(j.error === undefined ? {} : { error: j.error }),
    // Backtracking: the result was (or is being) recomputed because an identity that backed some of
    // its units was caught with a wrong result.
    ...(j.revisions.length === 0 ? {} : { revisions: revisionsView(j) }),
    links: { self: `/v1/jobs/${j.id}`, result: `/v1/jobs/${j.id}/result` },
  }
}

export function findJobTypeIn(types: ReadonlyMap<string, AnyJobType>) {
  return (name: string, version?: number): AnyJobType | undefined => {
    if (version !== undefined) return types.get(`${name}@${version}`)
    let best: AnyJobType | undefined
    for (const t of types.values())
      if (t.name === name && (best === undefined || t.version > best.version)) best = t
    return best
  }
}

/** Content a job names, by hash: what planning reads, and what its units fetch (modules, datasets). */
function contentNamed(jobType: AnyJobType, params: unknown, inputs: unknown[] | undefined): string[] {
  const named = new Set<string>(jobType.planResources?.(params) ?? [])
  for (const input of inputs ?? []) {
    for (const h of jobType.resources?.(input) ?? []) named.add(h)
    for (const c of jobType.content?.(input) ?? []) named.add(c.root)
  }
  return [...named]
}

export function jobsRouter(init: JobsRoutesInit): Router {
  const { store, pipeline, tuning, uploads } = init
  const router = new Router({ prefix: '/v1' })
  const find = findJobTypeIn(init.jobTypes)

  /** A job the caller may see: its own, or any for an admin. Others' jobs are as absent as unknown ones. */
  const loadJob = jobLoader(store)

  /** Whether a job of `caller` may use content `hash`: its own upload (an admin may use any). */
  const mayUse = async (caller: Caller, hash: string): Promise<boolean> =>
    caller.admin || (await uploads.holdsAny(hash, caller.owner))

  /** Refuse content the caller has not uploaded itself. */
  const checkHeld = async (caller: Caller, hashes: string[]): Promise<void> => {
    for (const hash of hashes)
      if (!(await mayUse(caller, hash)))
        throw new ValidationError(
          'params',
          `names content ${hash} that this API key has not uploaded; upload it first (POST /v1/modules, /v1/blobs or /v1/datasets)`,
        )
  }

  router.get('/job-types', (ctx) => {
    ctx.body = {
      jobTypes: [...init.jobTypes.values()].map((t) => ({
        name: t.name,
        version: t.version,
        description: t.description,
        maxUnits: t.maxUnits,
        paramsSchema: t.paramsSchema,
      })),
    }
  })

  router.post('/jobs', async (ctx) => {
    const caller = callerOf(ctx)
    const req = parseJobRequest(await readJsonBody(ctx, tuning.maxBodyBytes), find, {
      quorum: tuning.defaultQuorum,
      minCredibility: tuning.defaultMinCredibility,
      spotCheckRate: tuning.defaultSpotCheckRate,
      minUnitSeconds: tuning.plannerMinUnitSeconds,
    })
    if (req.priority > caller.quota.maxPriority)
      throw new ValidationError('priority', `must be at most ${caller.quota.maxPriority} for this API key`)
    const { jobType } = req
    // Content the caller did not upload itself is missing to it: the same 422, whoever else holds it.
    const plan = await init.planner.plan({
      jobType,
      params: req.params,
      sizeGiven: req.sizeGiven,
      quorum: req.quorum,
      ...(req.unitSeconds === undefined ? {} : { unitSeconds: req.unitSeconds }),
      mayUse: (hash) => mayUse(caller, hash),
    })
    const { params } = plan
    const named = contentNamed(jobType, params, plan.inputs)
    await checkHeld(caller, named)
    const units = plan.view.units
    const id = randomId()
    const now = Date.now()
    const limit = caller.quota.unitsInFlight
    const outcome = await store.createJob(
      {
        id,
        type: jobType.name,
        version: jobType.version,
        params,
        quorum: req.quorum,
        maxReplicas: req.maxReplicas,
        minCredibility: req.minCredibility,
        spotCheckRate: req.spotCheckRate,
        priority: req.priority,
        owner: caller.owner,
        plan: plan.view,
      },
      now,
      { units, limit },
    )
    if (!outcome.created)
      throw quotaExceeded(
        'unitsInFlight',
        units > (limit ?? 0)
          ? `this job has ${units} units, more than the ${limit ?? 0} units in flight allowed to ${caller.owner}; split it into smaller jobs`
          : `this job has ${units} units and ${outcome.inFlight} of the ${limit ?? 0} units in flight allowed to ${caller.owner} are taken; ` +
              'wait for jobs to finish or cancel some',
        tuning.sweepIntervalMs / 1000,
      )
    // Content a job uses is kept at least a retention period after the job was submitted.
    await uploads.touch(caller.owner, named, now + tuning.uploadRetentionMs)
    await pipeline.plan(id)
    const job = await store.getJob(id)
    ctx.status = 201
    ctx.set('Location', `/v1/jobs/${id}`)
    ctx.body = job === undefined ? { id } : jobView(job)
  })

  router.get('/jobs', async (ctx) => {
    const caller = callerOf(ctx)
    const ids = await store.listJobIds(100, caller.admin ? undefined : caller.owner)
    const jobs = await Promise.all(ids.map((id) => store.getJob(id)))
    ctx.body = { jobs: jobs.filter((j): j is JobRecord => j !== undefined).map(jobView) }
  })

  router.get('/jobs/:id', async (ctx) => {
    ctx.body = jobView(await loadJob(ctx.params['id'] ?? '', callerOf(ctx)))
  })

  router.get('/jobs/:id/result', async (ctx) => {
    const job = await loadJob(ctx.params['id'] ?? '', callerOf(ctx))
    // A result under revision is still readable, marked as such.
    if (job.state !== 'completed' && job.state !== 'revising') {
      const why =
        job.state === 'failed'
          ? `job failed: ${job.error ?? 'unknown reason'}`
          : job.state === 'cancelled'
            ? 'job was cancelled'
            : `job is ${job.state} (${job.unitsValidated} of ${job.unitsTotal} units validated); try again later`
      throw new HttpError(409, 'result-not-ready', why, { state: job.state })
    }
    ctx.body = {
      id: job.id,
      type: job.type,
      version: job.version,
      params: job.params,
      result: job.result,
      ...(job.state === 'revising' ? { revising: true } : {}),
      ...(job.revisions.length === 0 ? {} : { revisions: revisionsView(job) }),
    }
  })

  router.delete('/jobs/:id', async (ctx) => {
    const job = await loadJob(ctx.params['id'] ?? '', callerOf(ctx))
    const prev = await store.cancel(job.id, Date.now())
    if (prev !== 'queued' && prev !== 'running') {
      throw new HttpError(
        409,
        'job-finished',
        `job is already ${prev ?? job.state}; only queued or running jobs can be cancelled`,
        {
          state: prev ?? job.state,
        },
      )
    }
    ctx.body = jobView((await store.getJob(job.id)) ?? job)
  })

  return router
}
