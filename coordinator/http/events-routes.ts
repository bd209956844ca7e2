// GET /v1/jobs/:id/events: a job's events as Server-Sent Events (docs/client.md), for its owner or
// an admin, from the first event or after the client's Last-Event-ID.
import { Router } from '@koa/router'
import { STREAM_ID } from '../../shared/index.js'
import type { EventStreams } from '../event-streams.js'
import type { Store } from '../store/store.js'
import { callerOf } from './auth.js'
import { HttpError } from './http-error.js'
import { jobLoader } from './job-access.js'

export interface EventsRoutesInit {
  store: Pick<Store, 'getJob'>
  streams: EventStreams
}

/** The last event id a client has: the Last-Event-ID header, or `lastEventId` in the query. */
function lastEventId(header: string, query: unknown): string {
  const given = header !== '' ? header : typeof query === 'string' ? query : ''
  if (given === '') return '0-0'
  if (!STREAM_ID.test(given))
    throw new HttpError(
      400,
      'bad-last-event-id',
      `Last-Event-ID must be an event id like "1700000000000-0", got "${given.slice(0, 64)}"`,
    )
  return given
}

export function eventsRouter(init: EventsRoutesInit): Router {
  const { store, streams } = init
  const router = new Router({ prefix: '/v1' })
  const loadJob = jobLoader(store)

  router.get('/jobs/:id/events', async (ctx) => {
    const caller = callerOf(ctx)
    const job = await loadJob(ctx.params['id'] ?? '', caller)
    const after = lastEventId(ctx.get('last-event-id'), ctx.query['lastEventId'])
    if (!streams.hasRoom())
      throw new HttpError(
        503,
        'too-many-streams',
        'this coordinator serves as many event streams as it may; try again shortly or poll GET /v1/jobs/:id',
        {},
        { 'Retry-After': '5' },
      )
    const { body, close } = streams.open({
      jobId: job.id,
      after,
      now: async () => {
        const j = await store.getJob(job.id)
        return j === undefined
          ? undefined
          : { state: j.state, validated: j.unitsValidated, failed: j.unitsFailed, total: j.unitsTotal }
      },
    })
    ctx.req.once('close', close)
    ctx.res.once('close', close)
    ctx.status = 200
    ctx.type = 'text/event-stream'
    ctx.set({ 'Cache-Control': 'no-cache, no-transform', 'X-Accel-Buffering': 'no' })
    ctx.body = body
  })

  return router
}
