// The operators' dashboard page: GET /dashboard and its bundle and stylesheet (built by
// scripts/build.mjs into dist/web). The page holds no data: it asks /v1/admin/* with the admin key
// the operator types in. Every response carries a strict Content-Security-Policy: scripts, styles
// and connections to this origin only, no inline script or style.
import type Koa from 'koa'
import { HttpError } from './http-error.js'
import { CSS, DEFAULT_WEB_DIR, HTML, JS, staticFiles, type Asset } from './static-files.js'

export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ')

const ASSETS: Record<string, Asset> = {
  '/dashboard': { file: 'dashboard.html', type: HTML },
  '/dashboard/': { file: 'dashboard.html', type: HTML },
  '/dashboard/app.js': { file: 'dashboard.js', type: JS },
  '/dashboard/app.css': { file: 'dashboard.css', type: CSS },
  '/dashboard/dashboard.js.map': { file: 'dashboard.js.map', type: 'application/json' },
}

/** Serves the page; `webDir` defaults to dist/web. */
export function dashboardMiddleware(webDir: string = DEFAULT_WEB_DIR): Koa.Middleware {
  const send = staticFiles(webDir)
  return async (ctx, next) => {
    if (ctx.path !== '/dashboard' && !ctx.path.startsWith('/dashboard/')) {
      await next()
      return
    }
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD')
      throw new HttpError(405, 'method-not-allowed', 'the dashboard only answers GET and HEAD')
    ctx.set('Content-Security-Policy', DASHBOARD_CSP)
    ctx.set('Cross-Origin-Opener-Policy', 'same-origin')
    ctx.set('Referrer-Policy', 'no-referrer')
    const asset = ASSETS[ctx.path]
    if (asset === undefined) throw new HttpError(404, 'not-found', `no file ${ctx.path}`)
    await send(ctx, asset)
  }
}
