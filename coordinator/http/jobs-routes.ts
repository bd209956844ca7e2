// The submitter's API: submit, watch, fetch the result, cancel; list job types.
import { Router } from '@koa/router'
import { Readable } from 'node:stream'
import {
  decode,
  randomId,
  ValidationError,
  type AnyJobType,
  type JobView,
  type RevisionView,
} from '../../shared/index.js'
import { parseJobRequest, type JobRequest } from '../job-request.js'
import { check, parseParams } from '../schema/index.js'
import { DEFAULT_UNITS_PAGE, MAX_UNITS_PAGE, unitsQuerySchema } from '../schema/jobs.js'
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
    links: { self: `/v1/jobs/${j.id}`, result: `/v1/jobs/${j.id}/result`, units: `/v1/jobs/${j.id}/units` },
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

/**
 * A fresh job id: 22 base64url characters that never start with `-`, so `cohort status <id>` and the
 * other commands never take an id for an option (1 in 64 random ids did).
 */
export function newJobId(): string {
  for (;;) {
    const id = randomId()
    if (!id.startsWith('-')) return id
  }
}

const NDJSON = 'application/x-ndjson'
/** Units read from Redis per round trip. */
const UNIT_BATCH = 500
/** Units one page request looks at, at most, when it filters by state. */
const MAX_SCAN = 20_000

/** A unit output as JSON: bytes as base64. */
function jsonValue(v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64')
  if (Array.isArray(v)) return v.map(jsonValue)
  if (typeof v === 'object' && v !== null)
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, jsonValue(x)]))
  return v
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

  /** A validated unit's output, parsed by its job type, as JSON. */
  const outputOf = (job: JobRecord, bytes: Buffer): unknown => {
    const jobType = find(job.type, job.version)
    if (jobType === undefined) throw new Error(`job type ${job.type}@${job.version} is not served here`)
    return jsonValue(jobType.parseOutput(decode(bytes)))
  }

  /** Units from `cursor` on, in `state` when given: at most `limit`, looking at most at MAX_SCAN. */
  const unitsPage = async (job: JobRecord, state: string | undefined, cursor: number, limit: number) => {
    const units: { index: number; state: string; output?: unknown; error?: string }[] = []
    let at = cursor
    const end = Math.min(job.unitsTotal, cursor + MAX_SCAN)
    while (at < end && units.length < limit) {
      const want = state === undefined ? limit - units.length : UNIT_BATCH
      const rows = await store.unitRows(job.id, at, Math.min(want, UNIT_BATCH, end - at))
      for (const r of rows) {
        at = r.index + 1
        if (state !== undefined && r.state !== state) continue
        units.push({
          index: r.index,
          state: r.state,
          ...(r.state === 'validated' && r.output !== null ? { output: outputOf(job, r.output) } : {}),
          ...(r.state === 'failed' && r.error !== null ? { error: r.error } : {}),
        })
        if (units.length === limit) break
      }
    }
    return { units, total: job.unitsTotal, ...(at < job.unitsTotal ? { nextCursor: String(at) } : {}) }
  }

  /** The NDJSON result: the job on the first line, then one line per unit output, read in batches. */
  async function* resultLines(job: JobRecord): AsyncGenerator<string> {
    const { id, type, version, params } = job
    yield `${JSON.stringify({ id, type, version, params, units: job.unitsTotal })}\n`
    for (let at = 0; at < job.unitsTotal; at += UNIT_BATCH) {
      const rows = await store.unitRows(job.id, at, Math.min(UNIT_BATCH, job.unitsTotal - at))
      let chunk = ''
      for (const r of rows) {
        if (r.output === null) throw new Error(`unit ${r.index} of completed job ${job.id} has no output`)
        chunk += `${JSON.stringify({ unit: r.index, output: outputOf(job, r.output) })}\n`
      }
      yield chunk
    }
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

  /** Plans and stores a job for `caller`; its view once planned. */
  const submit = async (caller: Caller, req: JobRequest, extra: { resubmittedFrom?: string } = {}) => {
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
    const id = newJobId()
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
    return { id, ...(job === undefined ? {} : jobView(job)), ...extra }
  }

  router.post('/jobs', async (ctx) => {
    const caller = callerOf(ctx)
    const req = parseJobRequest(await readJsonBody(ctx, tuning.maxBodyBytes), find, {
      quorum: tuning.defaultQuorum,
      minCredibility: tuning.defaultMinCredibility,
      spotCheckRate: tuning.defaultSpotCheckRate,
      minUnitSeconds: tuning.plannerMinUnitSeconds,
    })
    const view = await submit(caller, req)
    ctx.status = 201
    ctx.set('Location', `/v1/jobs/${view.id}`)
    ctx.body = view
  })

  router.post('/jobs/:id/resubmit', async (ctx) => {
    const caller = callerOf(ctx)
    const old = await loadJob(ctx.params['id'] ?? '', caller)
    if (old.state !== 'failed' && old.state !== 'cancelled')
      throw new HttpError(
        409,
        'job-not-ended',
        `job is ${old.state}; only a failed or cancelled job can be submitted again`,
        { state: old.state },
      )
    const jobType = find(old.type, old.version)
    if (jobType === undefined)
      throw new ValidationError('type', `job type ${old.type}@${old.version} is no longer served here`)
    // The stored params are complete (the planner's unit size included): the new job keeps them.
    const view = await submit(
      caller,
      {
        jobType,
        params: parseParams(jobType, old.params),
        sizeGiven: true,
        quorum: old.quorum,
        maxReplicas: old.maxReplicas,
        minCredibility: old.minCredibility,
        spotCheckRate: old.spotCheckRate,
        priority: old.priority,
      },
      { resubmittedFrom: old.id },
    )
    ctx.status = 201
    ctx.set('Location', `/v1/jobs/${view.id}`)
    ctx.body = view
  })

  router.get('/jobs/:id/units', async (ctx) => {
    const job = await loadJob(ctx.params['id'] ?? '', callerOf(ctx))
    const q = check(unitsQuerySchema, { ...ctx.query }, '')
    const limit = q.limit === undefined ? DEFAULT_UNITS_PAGE : Number(q.limit)
    if (limit > MAX_UNITS_PAGE)
      throw new ValidationError('limit', `must be an integer in 1..${MAX_UNITS_PAGE}`)
    const page = await unitsPage(job, q.state, q.cursor === undefined ? 0 : Number(q.cursor), limit)
    ctx.body = page
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
    if (ctx.accepts('application/json', NDJSON) === NDJSON) {
      ctx.type = NDJSON
      ctx.body = Readable.from(resultLines(job), { objectMode: false })
      return
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
