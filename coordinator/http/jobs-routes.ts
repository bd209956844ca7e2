// The submitter's API: submit, watch, fetch the result, cancel; list job types.
import { Router } from '@koa/router'
import type { Context } from 'koa'
import { ID_PATTERN, randomId, ValidationError, type AnyJobType } from '../../shared/index.js'
import { parseJobRequest } from '../job-request.js'
import type { CoordinatorTuning } from '../options.js'
import { loadPlanResources, type Pipeline, type PlanSources } from '../pipeline.js'
import type { JobRecord, Store } from '../store/store.js'
import { readJsonBody } from './body.js'
import { HttpError } from './http-error.js'

export interface JobsRoutesInit {
  store: Store
  /** Input blobs and datasets, which a job's params may name (`planResources`). */
  sources: PlanSources
  pipeline: Pipeline
  tuning: CoordinatorTuning
  jobTypes: ReadonlyMap<string, AnyJobType>
  /** The caller's identity (API key id or `anonymous`); throws HttpError 401 when refused. */
  authenticate: (ctx: Context) => string
}

/** What GET /v1/jobs/:id shows. */
export function jobView(j: JobRecord) {
  const done = j.unitsValidated + j.unitsFailed
  return {
    id: j.id,
    type: j.type,
    version: j.version,
    state: j.state,
    params: j.params,
    redundancy: { quorum: j.quorum, maxReplicas: j.maxReplicas },
    priority: j.priority,
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

export function jobsRouter(init: JobsRoutesInit): Router {
  const { store, pipeline, tuning } = init
  const router = new Router({ prefix: '/v1' })
  const find = findJobTypeIn(init.jobTypes)

  const loadJob = async (id: string): Promise<JobRecord> => {
    if (!ID_PATTERN.test(id)) throw new HttpError(404, 'job-not-found', `no job with id "${id}"`)
    const job = await store.getJob(id)
    if (job === undefined) throw new HttpError(404, 'job-not-found', `no job with id "${id}"`)
    return job
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
    const owner = init.authenticate(ctx)
    const req = parseJobRequest(await readJsonBody(ctx, tuning.maxBodyBytes), find, tuning.defaultQuorum)
    if (req.jobType.planResources !== undefined) {
      // Split now, so a missing blob or dataset, or content that gives too many or too large units,
      // is a 422 here rather than a job that fails at planning.
      const resources = await loadPlanResources(req.jobType, req.params, init.sources)
      const units = req.jobType.split(req.params, (hash) => resources.get(hash)).length
      if (units > req.jobType.maxUnits)
        throw new ValidationError(
          'params',
          `this job would split into ${units} units; the limit is ${req.jobType.maxUnits}`,
        )
    }
    const id = randomId()
    const now = Date.now()
    await store.createJob(
      {
        id,
        type: req.jobType.name,
        version: req.jobType.version,
        params: req.params,
        quorum: req.quorum,
        maxReplicas: req.maxReplicas,
        priority: req.priority,
        owner,
      },
      now,
    )
    await pipeline.plan(id)
    const job = await store.getJob(id)
    ctx.status = 201
    ctx.set('Location', `/v1/jobs/${id}`)
    ctx.body = job === undefined ? { id } : jobView(job)
  })

  router.get('/jobs', async (ctx) => {
    const ids = await store.listJobIds(100)
    const jobs = await Promise.all(ids.map((id) => store.getJob(id)))
    ctx.body = { jobs: jobs.filter((j): j is JobRecord => j !== undefined).map(jobView) }
  })

  router.get('/jobs/:id', async (ctx) => {
    ctx.body = jobView(await loadJob(ctx.params['id'] ?? ''))
  })

  router.get('/jobs/:id/result', async (ctx) => {
    const job = await loadJob(ctx.params['id'] ?? '')
    if (job.state !== 'completed') {
      const why =
        job.state === 'failed'
          ? `job failed: ${job.error ?? 'unknown reason'}`
          : job.state === 'cancelled'
            ? 'job was cancelled'
            : `job is ${job.state} (${job.unitsValidated} of ${job.unitsTotal} units validated); try again later`
      throw new HttpError(409, 'result-not-ready', why, { state: job.state })
    }
    ctx.body = { id: job.id, type: job.type, version: job.version, params: job.params, result: job.result }
  })

  router.delete('/jobs/:id', async (ctx) => {
    init.authenticate(ctx)
    const job = await loadJob(ctx.params['id'] ?? '')
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
