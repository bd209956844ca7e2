// The coordinator's HTTP application: problem+json errors, the jobs, modules, blobs and datasets
// APIs, health and stats.
import Koa, { type Context } from 'koa'
import { createHash, timingSafeEqual } from 'node:crypto'
import type { AnyJobType, Logger } from '../../shared/index.js'
import type { Counters } from '../counters.js'
import type { CoordinatorTuning } from '../options.js'
import type { Pipeline } from '../pipeline.js'
import type { Store } from '../store/store.js'
import { HttpError, problemMiddleware } from './http-error.js'
import { jobsRouter } from './jobs-routes.js'
import { modulesRouter } from './modules-routes.js'
import { blobsRouter } from './blobs-routes.js'
import { datasetsRouter } from './datasets-routes.js'
import type { ContentStore } from '../modules/content-store.js'
import type { DatasetStore } from '../content/dataset-store.js'
import type { Router } from '@koa/router'

export interface AppInit {
  store: Store
  /** WebAssembly modules by SHA-256. */
  modules: ContentStore
  /** Input blobs by SHA-256. */
  blobs: ContentStore
  /** Datasets: chunks and manifests by SHA-256. */
  datasets: DatasetStore
  pipeline: Pipeline
  tuning: CoordinatorTuning
  counters: Counters
  log: Logger
  jobTypes: ReadonlyMap<string, AnyJobType>
  /** Whether NATS is connected, for /healthz. */
  natsUp: () => boolean
  /** Extra routes (the contribute page, added by its own module). */
  extra?: Koa.Middleware[]
}

function authenticator(apiKeys: string[]): (ctx: Context) => string {
  const hashes = apiKeys.map((k) => createHash('sha256').update(k).digest())
  return (ctx) => {
    if (hashes.length === 0) return 'anonymous'
    const header = ctx.get('authorization')
    const m = /^Bearer\s+(\S+)$/i.exec(header)
    if (m === null)
      throw new HttpError(401, 'unauthorized', 'send your API key as "Authorization: Bearer <key>"')
    const h = createHash('sha256')
      .update(m[1] ?? '')
      .digest()
    const ok = hashes.find((x) => timingSafeEqual(x, h))
    if (ok === undefined)
      throw new HttpError(401, 'unauthorized', 'the API key is not known to this coordinator')
    return ok.toString('hex').slice(0, 16)
  }
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
  const authenticate = authenticator(init.tuning.apiKeys)
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
      authenticate,
    }),
  )
  mount(blobsRouter({ blobs: init.blobs, tuning: init.tuning, authenticate }))
  mount(datasetsRouter({ datasets: init.datasets, tuning: init.tuning, authenticate }))
  mount(
    jobsRouter({
      store: init.store,
      sources: { blobs: init.blobs, datasets: init.datasets },
      pipeline: init.pipeline,
      tuning: init.tuning,
      jobTypes: init.jobTypes,
      authenticate,
    }),
  )
  for (const mw of init.extra ?? []) app.use(mw)
  return app
}
