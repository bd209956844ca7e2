// Operators' JSON for the dashboard: GET /v1/admin/overview (jobs and their progress, workers
// online by runtime, throughput, integrity, bytes served) and GET /v1/admin/jobs/:id/units (the
// state of a range of a job's units, one character each). Admin keys only when keys are
// configured; without keys, whoever the coordinator lets call the API.
import { Router } from '@koa/router'
import type { Context } from 'koa'
import { ID_PATTERN, UNIT_CODES, type Overview, type UnitStatesView } from '../../shared/index.js'
import type { Counters } from '../counters.js'
import type { Activity } from '../metrics/activity.js'
import type { CoordinatorTuning } from '../options.js'
import { MAX_UNITS_PER_READ, type OpsViews } from '../store/ops-views.js'
import type { Store } from '../store/store.js'
import { callerOf } from './auth.js'
import { HttpError } from './http-error.js'

/** Jobs the overview lists: the newest. */
export const OVERVIEW_JOBS = 30

export interface AdminRoutesInit {
  store: Store
  views: OpsViews
  activity: Activity
  counters: Counters
  tuning: CoordinatorTuning
}

/** Refuse callers without an admin key when the coordinator has keys. */
export function requireOperator(ctx: Context, tuning: CoordinatorTuning): void {
  const caller = callerOf(ctx)
  if (tuning.apiKeys.length > 0 && !caller.admin)
    throw new HttpError(
      403,
      'forbidden',
      'the dashboard needs an admin key (role "admin" in --api-keys-file)',
    )
}

function intParam(v: unknown, name: string, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt
  const n = typeof v === 'string' && /^\d{1,12}$/.test(v) ? Number(v) : NaN
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw new HttpError(400, 'bad-request', `${name} must be an integer from ${min} to ${max}`)
  return n
}

export function adminRouter(init: AdminRoutesInit): Router {
  const { store, views, activity, counters, tuning } = init
  const router = new Router({ prefix: '/v1/admin' })
  router.use(async (ctx, next) => {
    requireOperator(ctx, tuning)
    ctx.set('Cache-Control', 'no-store')
    await next()
  })

  router.get('/overview', async (ctx) => {
    const now = Date.now()
    const ids = await store.listJobIds(OVERVIEW_JOBS)
    const jobs = (await Promise.all(ids.map((id) => store.getJob(id)))).flatMap((j) =>
      j === undefined
        ? []
        : [
            {
              id: j.id,
              type: j.type,
              owner: j.owner,
              state: j.state,
              quorum: j.quorum,
              units: { total: j.unitsTotal, validated: j.unitsValidated, failed: j.unitsFailed },
              planned: j.planned,
              createdAt: j.createdAt,
              updatedAt: j.updatedAt,
            },
          ],
    )
    const [online, workers, throughput] = await Promise.all([
      activity.online(now),
      activity.onlineWorkers(now),
      activity.throughput(now),
    ])
    const body: Overview = {
      at: now,
      jobs,
      workers: { online, list: workers },
      throughput,
      // This coordinator's counters (each coordinator counts what it did itself).
      integrity: {
        disagreements: counters.unitsReissued,
        identitiesCaught: counters.identitiesCaught,
        unitsBacktracked: counters.unitsReopened,
        resultsDiscarded: counters.resultsDiscarded,
        jobsRevised: counters.jobsRevised,
      },
      // Bytes from peers are known to workers only (their own stats); this is what coordinators serve.
      bytes: {
        coordinator: counters.chunkBytesServed + counters.moduleBytesServed,
        coordinatorChunks: counters.chunkBytesServed,
        coordinatorModules: counters.moduleBytesServed,
        peers: null,
      },
      counters: { ...counters },
    }
    ctx.body = body
  })

  router.get('/jobs/:id/units', async (ctx) => {
    const id = ctx.params['id'] ?? ''
    const job = ID_PATTERN.test(id) ? await store.getJob(id) : undefined
    if (job === undefined) throw new HttpError(404, 'job-not-found', `no job with id "${id}"`)
    const from = intParam(ctx.query['from'], 'from', 0, Math.max(0, job.unitsTotal), 0)
    const count = intParam(
      ctx.query['count'],
      'count',
      0,
      MAX_UNITS_PER_READ,
      Math.min(MAX_UNITS_PER_READ, job.unitsTotal - from),
    )
    const states = await views.unitStates(id, from, Math.min(count, job.unitsTotal - from))
    const body: UnitStatesView = {
      jobId: id,
      state: job.state,
      total: job.unitsTotal,
      from,
      states,
      codes: UNIT_CODES,
    }
    ctx.body = body
  })

  return router
}
