// The coordinator's HTTP application: problem+json errors, the jobs, modules, blobs and datasets
// APIs, health and stats.
import Koa from 'koa'
import type { AnyJobType, Logger } from '../../shared/index.js'
import type { Counters } from '../counters.js'
import type { CoordinatorTuning } from '../options.js'
import type { Pipeline } from '../pipeline.js'
import type { Planner } from '../planner/planner.js'
import type { Store } from '../store/store.js'
import { HttpError, problemMiddleware } from './http-error.js'
import { jobsRouter } from './jobs-routes.js'
import { modulesRouter } from './modules-routes.js'
import { blobsRouter } from './blobs-routes.js'
import { datasetsRouter } from './datasets-routes.js'
import { eventsRouter } from './events-routes.js'
import type { EventStreams } from '../event-streams.js'
import type { ContentStore } from '../modules/content-store.js'
import type { DatasetStore } from '../content/dataset-store.js'
import type { Uploads } from '../content/uploads.js'
import { authMiddleware } from './auth.js'
import type { Router } from '@koa/router'

export interface AppInit {
  store: Store
  /** WebAssembly modules by SHA-256. */
  modules: ContentStore
  /** Input blobs by SHA-256. */
  blobs: ContentStore
  /** Datasets: chunks and manifests by SHA-256. */
  datasets: DatasetStore
  /** Who holds which upload. */
  uploads: Uploads
  pipeline: Pipeline
  /** Job events streamed to submitters (GET /v1/jobs/:id/events). */
  eventStreams: EventStreams
  /** Sizes and splits submitted jobs. */
  planner: Planner
  tuning: CoordinatorTuning
  counters: Counters
  log: Logger
  jobTypes: ReadonlyMap<string, AnyJobType>
  /** Whether NATS is connected, for /healthz. */
  natsUp: () => boolean
  /** Extra routes (the contribute page, added by its own module). */
  extra?: Koa.Middleware[]
}

export function createApp(init: AppInit): Koa {
  const app = new Koa()
  app.silent = true
  app.use(problemMiddleware(init.log, () => init.counters.httpErrors++))
  app.use(async (ctx, next) => {
    ctx.set('X-Content-Type-Options', 'nosniff')
    await next()
  })
  app.use(async (ctx, next) => {
    if (ctx.path === '/healthz' && ctx.method === 'GET') {
      const redis = await init.store.ping().catch(() => false)
      const nats = init.natsUp()
      ctx.status = redis && nats ? 200 : 503
      ctx.body = { ok: redis && nats, redis: redis ? 'up' : 'down', nats: nats ? 'up' : 'down' }
      return
    }
    if (ctx.path === '/v1/stats' && ctx.method === 'GET') {
      ctx.body = { counters: init.counters }
      return
    }
    await next()
  })
  // Everything below needs a caller (an API key, or anonymous when allowed), except public paths.
  app.use(authMiddleware({ tuning: init.tuning, store: init.store }))
  const { uploads } = init
  const mount = (router: Router): void => {
    app.use(router.routes())
    app.use(
      router.allowedMethods({
        throw: true,
        methodNotAllowed: () =>
          new HttpError(405, 'method-not-allowed', 'this method is not allowed on this path'),
        notImplemented: () => new HttpError(405, 'method-not-allowed', 'this method is not supported'),
      }),
    )
  }
  mount(
    modulesRouter({
      modules: init.modules,
      datasets: init.datasets,
      tuning: init.tuning,
      counters: init.counters,
      uploads,
    }),
  )
  mount(blobsRouter({ blobs: init.blobs, tuning: init.tuning, uploads }))
  mount(datasetsRouter({ datasets: init.datasets, tuning: init.tuning, uploads }))
  mount(
    jobsRouter({
      store: init.store,
      planner: init.planner,
      pipeline: init.pipeline,
      tuning: init.tuning,
      jobTypes: init.jobTypes,
      uploads,
    }),
  )
  mount(eventsRouter({ store: init.store, streams: init.eventStreams }))
  for (const mw of init.extra ?? []) app.use(mw)
  return app
}
