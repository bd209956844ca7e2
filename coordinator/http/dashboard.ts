// The operators' dashboard page: GET /dashboard and its bundle and stylesheet (built by
// scripts/build.mjs into dist/web). The page holds no data: it asks /v1/admin/* with the admin key
// the operator types in. Every response carries a strict Content-Security-Policy: scripts, styles
// and connections to this origin only, no inline script or style.
import type Koa from 'koa'
import { DEFAULT_WEB_DIR, pageAssets, pageMiddleware } from './static-files.js'

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

const ASSETS = pageAssets('/dashboard', 'dashboard')

/** Serves the page; `webDir` defaults to dist/web. */
export function dashboardMiddleware(webDir: string = DEFAULT_WEB_DIR): Koa.Middleware {
  return pageMiddleware('/dashboard', ASSETS, DASHBOARD_CSP, webDir)
}
