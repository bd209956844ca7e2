// HTTP requests for /metrics: counted by method, route template and status once answered (errors
// included: this runs outside the problem+json middleware). The route is the template the router
// matched (`/v1/jobs/:id`), a fixed label for the paths served without a router, or `unmatched`:
// a raw URL never becomes a label.
import type { Context, Middleware } from 'koa'

const FIXED: readonly [string, string][] = [
  ['/healthz', '/healthz'],
  ['/metrics', '/metrics'],
  ['/v1/stats', '/v1/stats'],
]
const TREES = ['/dashboard', '/contribute', '/stats']
const METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'])

/** The bounded route label of an answered request. */
export function routeLabel(ctx: Context): string {
  const matched = (ctx as { _matchedRoute?: unknown })._matchedRoute
  if (typeof matched === 'string') return matched
  for (const [path, label] of FIXED) if (ctx.path === path) return label
  for (const tree of TREES) if (ctx.path === tree || ctx.path.startsWith(`${tree}/`)) return `${tree}/*`
  return 'unmatched'
}

export function httpMetricsMiddleware(
  record: (method: string, route: string, status: number, seconds: number) => void,
): Middleware {
  return async (ctx, next) => {
    const began = performance.now()
    try {
      await next()
    } finally {
      const method = METHODS.has(ctx.method) ? ctx.method : 'OTHER'
      record(method, routeLabel(ctx), ctx.status, (performance.now() - began) / 1000)
    }
  }
}
