// The public stats page: GET /stats and its bundle and stylesheet (built by scripts/build.mjs into
// dist/web from stats/). The page holds no data: it asks GET /v1/leaderboard and
// GET /v1/volunteers/:id of its own origin, and writes names and teams as text, never as markup.
// Same policy as the dashboard: this origin's scripts, styles and connections only, nothing inline.
import type Koa from 'koa'
import { DASHBOARD_CSP } from './dashboard.js'
import { DEFAULT_WEB_DIR, pageAssets, pageMiddleware } from './static-files.js'

export const STATS_CSP = DASHBOARD_CSP

const ASSETS = pageAssets('/stats', 'stats')

/** Serves the page; `webDir` defaults to dist/web. */
export function statsPageMiddleware(webDir: string = DEFAULT_WEB_DIR): Koa.Middleware {
  return pageMiddleware('/stats', ASSETS, STATS_CSP, webDir)
}
