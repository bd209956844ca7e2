// Health, counters, Prometheus metrics, the OpenAPI document and the page that renders it: public
// routes outside /v1/ jobs, mounted before the API key check.
import { Router } from '@koa/router'
import type { AnyJobType } from '../../shared/index.js'
import type { Counters } from '../counters.js'
import type { Metrics } from '../metrics/metrics.js'
import { withTimeout } from '../with-timeout.js'
import { openApiDocument } from '../schema/openapi.js'
import type { Store } from '../store/store.js'
import { API_DOCS_CSP, API_DOCS_CSS, API_DOCS_HTML, API_DOCS_JS } from './api-docs-page.js'
import { HttpError } from './http-error.js'
import type { RouteInfo } from './routes.js'

export interface SystemRoutesInit {
  store: Pick<Store, 'ping'>
  counters: Counters
  natsUp: () => boolean
  jobTypes: ReadonlyMap<string, AnyJobType>
  metrics: Pick<Metrics, 'render'>
  /** Every route of the app, known once all routers are built. */
  routes: () => readonly RouteInfo[]
}

/** Longest a scrape of /metrics may take (it reads Redis). */
const SCRAPE_TIMEOUT_MS = 5_000

/** The API's version in the document: the /v1 of the paths. */
const API_VERSION = '1'

const FILES: Record<string, { type: string; body: string }> = {
  'app.js': { type: 'text/javascript; charset=utf-8', body: API_DOCS_JS },
  'app.css': { type: 'text/css; charset=utf-8', body: API_DOCS_CSS },
}

export function systemRouter(init: SystemRoutesInit): Router {
  const router = new Router()
  let document: string | undefined

  router.get('/healthz', async (ctx) => {
    const redis = await init.store.ping().catch(() => false)
    const nats = init.natsUp()
    ctx.status = redis && nats ? 200 : 503
    ctx.body = { ok: redis && nats, redis: redis ? 'up' : 'down', nats: nats ? 'up' : 'down' }
  })

  router.get('/v1/stats', (ctx) => {
    ctx.body = { counters: init.counters }
  })

  router.get('/metrics', async (ctx) => {
    const { text, contentType } = await withTimeout(
      init.metrics.render(),
      SCRAPE_TIMEOUT_MS,
      'the scrape',
    ).catch((err: unknown) => {
      throw new HttpError(503, 'metrics-unavailable', `metrics not collected: ${(err as Error).message}`)
    })
    ctx.type = contentType
    ctx.body = text
  })

  router.get('/openapi.json', (ctx) => {
    // Built once: the routes and schemas do not change while the process runs.
    document ??= JSON.stringify(openApiDocument(init.routes(), init.jobTypes.values(), API_VERSION))
    ctx.type = 'application/json'
    ctx.set('Cache-Control', 'no-cache')
    ctx.body = document
  })

  router.get('/docs/api', (ctx) => {
    ctx.set('Content-Security-Policy', API_DOCS_CSP)
    ctx.set('Referrer-Policy', 'no-referrer')
    ctx.type = 'text/html; charset=utf-8'
    ctx.body = API_DOCS_HTML
  })

  router.get('/docs/api/:file', (ctx) => {
    const file = FILES[ctx.params['file'] ?? '']
    if (file === undefined) throw new HttpError(404, 'not-found', `no file ${ctx.path}`)
    ctx.set('Content-Security-Policy', API_DOCS_CSP)
    ctx.type = file.type
    ctx.body = file.body
  })

  return router
}
