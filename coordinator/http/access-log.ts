// The HTTP access log: one line per request once its response ended (or the connection closed),
// with its method, route template (never the raw URL, which may carry ids of other owners' jobs),
// status, duration, response bytes and the caller's owner id when the request was authenticated.
// No API key, header or body is ever logged.
import type { Middleware } from 'koa'
import type { Logger } from '../../shared/index.js'
import { routeLabel } from './http-metrics.js'

export function accessLogMiddleware(log: Logger): Middleware {
  return async (ctx, next) => {
    const began = performance.now()
    const res = ctx.res
    let bytes = 0
    // Count what is written, streams (NDJSON results, event streams) included.
    const write = res.write.bind(res) as (...a: unknown[]) => boolean
    const end = res.end.bind(res) as (...a: unknown[]) => typeof res
    const count = (chunk: unknown): void => {
      if (typeof chunk === 'string') bytes += Buffer.byteLength(chunk)
      else if (chunk instanceof Uint8Array) bytes += chunk.byteLength
    }
    res.write = ((...a: unknown[]) => (count(a[0]), write(...a))) as typeof res.write
    res.end = ((...a: unknown[]) => (
      typeof a[0] === 'function' ? 0 : count(a[0]),
      end(...a)
    )) as typeof res.end
    let logged = false
    const done = (): void => {
      if (logged) return
      logged = true
      const owner = (ctx.state as { caller?: { owner?: unknown } }).caller?.owner
      log.info('request', {
        method: ctx.method.slice(0, 10),
        route: routeLabel(ctx),
        status: ctx.status,
        ms: Math.round((performance.now() - began) * 10) / 10,
        bytes,
        ...(typeof owner === 'string' ? { owner } : {}),
      })
    }
    res.once('finish', done)
    res.once('close', done)
    await next()
  }
}
