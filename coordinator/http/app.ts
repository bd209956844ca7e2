// The coordinator's HTTP application: problem+json errors, the jobs, modules, blobs and datasets
// APIs, health and stats, the OpenAPI document and its page.
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
import type { Metrics } from '../metrics/metrics.js'
import type { Activity } from '../metrics/activity.js'
import type { OpsViews } from '../store/ops-views.js'
import { adminRouter } from './admin-routes.js'
import { dashboardMiddleware } from './dashboard.js'
import { statsPageMiddleware } from './stats-page.js'
import { httpMetricsMiddleware } from './http-metrics.js'
import { accessLogMiddleware } from './access-log.js'
import { routesOf, type RouteInfo } from './routes.js'
import { systemRouter } from './system-routes.js'

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
  /** Extra routers (volunteer sign-up), documented like the others. */
  routers?: Router[]
  /** Extra middleware (the contribute page, added by its own module). */
  extra?: Koa.Middleware[]
  /** /metrics, HTTP request counts and the dashboard's data. */
  metrics: Metrics
  views: OpsViews
  activity: Activity
}

/** The app, and the routes its routers answer (each one documented in GET /openapi.json). */
export type CoordinatorApp = Koa & { routes(): RouteInfo[] }

export function createApp(init: AppInit): CoordinatorApp {
  const app = new Koa()
  app.silent = true
  app.use(httpMetricsMiddleware((...a) => init.metrics.http(...a)))
  if (init.tuning.accessLog) app.use(accessLogMiddleware(init.log.child('access')))
  app.use(problemMiddleware(init.log, () => init.counters.httpErrors++))
  app.use(async (ctx, next) => {
    ctx.set('X-Content-Type-Options', 'nosniff')
    await next()
  })
  app.use(dashboardMiddleware())
  app.use(statsPageMiddleware())
  const { uploads } = init
  const routers: Router[] = []
  const mount = (router: Router): void => {
    routers.push(router)
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
    systemRouter({
      store: init.store,
      counters: init.counters,
      natsUp: init.natsUp,
      jobTypes: init.jobTypes,
      metrics: init.metrics,
      routes: () => routesOf(routers),
    }),
  )
  // Everything below needs a caller (an API key, or anonymous when allowed), except public paths.
  app.use(authMiddleware({ tuning: init.tuning, store: init.store }))
  for (const router of init.routers ?? []) mount(router)
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
  mount(
    adminRouter({
      store: init.store,
      views: init.views,
      activity: init.activity,
      counters: init.counters,
      tuning: init.tuning,
    }),
  )
  mount(eventsRouter({ store: init.store, streams: init.eventStreams }))
  for (const mw of init.extra ?? []) app.use(mw)
  return Object.assign(app, { routes: () => routesOf(routers) })
}
