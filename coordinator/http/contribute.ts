// The browser contributor, served by the coordinator: GET /contribute (the page), its bundles and
// stylesheet (built by scripts/build.mjs into dist/web) and /contribute/config.json (where the NATS
// WebSocket listener is and which keys sign units). Every response carries a strict
// Content-Security-Policy: scripts, workers and styles from this origin only, and network
// connections to this origin and the NATS WebSocket listener only.
import type Koa from 'koa'
import { checkWsUrl, ConfigError, PEER_ID_PATTERN, type ContributeConfig } from '../../shared/index.js'
import { HttpError } from './http-error.js'
import { CSS, DEFAULT_WEB_DIR, HTML, JS, staticFiles, type Asset } from './static-files.js'

export interface ContributeInit {
  /** Full URL of the NATS WebSocket listener that browsers connect to, e.g. ws://127.0.0.1:8443. */
  natsWsUrl: string
  /** NATS subject prefix of the deployment. */
  subjectPrefix: string
  /** Coordinator public keys (base64url) whose units the page runs; at least one. */
  trust: string[]
  /** Directory of the built page. Default: dist/web, found from this file's place in dist/. */
  webDir?: string
}

const ASSETS: Record<string, Asset> = {
  '/contribute': { file: 'contribute.html', type: HTML },
  '/contribute/': { file: 'contribute.html', type: HTML },
  '/contribute/app.js': { file: 'page.js', type: JS },
  '/contribute/app.css': { file: 'contribute.css', type: CSS },
  '/contribute/unit-worker.js': { file: 'unit-worker.js', type: JS },
  '/contribute/icon.svg': { file: 'icon.svg', type: 'image/svg+xml' },
  '/contribute/page.js.map': { file: 'page.js.map', type: 'application/json' },
  '/contribute/unit-worker.js.map': { file: 'unit-worker.js.map', type: 'application/json' },
}

/** The page's policy: nothing but this origin, plus the NATS WebSocket listener for connections. */
export function contentSecurityPolicy(natsWsUrl: string): string {
  const ws = new URL(natsWsUrl)
  return [
    "default-src 'none'",
    // WebAssembly jobs compile modules in the unit Web Workers; 'wasm-unsafe-eval' allows only that.
    "script-src 'self' 'wasm-unsafe-eval'",
    "worker-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    `connect-src 'self' ${ws.protocol}//${ws.host}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ')
}

function checkInit(init: ContributeInit): ContributeConfig {
  try {
    checkWsUrl(init.natsWsUrl, 'contribute.natsWsUrl')
  } catch (err) {
    throw new ConfigError((err as Error).message, { cause: err })
  }
  if (init.trust.length === 0 || init.trust.some((k) => !PEER_ID_PATTERN.test(k)))
    throw new ConfigError('contribute.trust must list coordinator public keys (43 base64url characters)')
  return { natsWsUrl: init.natsWsUrl, subjectPrefix: init.subjectPrefix, trust: [...init.trust] }
}

export function contributeMiddleware(init: ContributeInit): Koa.Middleware {
  const config = checkInit(init)
  const webDir = init.webDir ?? DEFAULT_WEB_DIR
  const csp = contentSecurityPolicy(config.natsWsUrl)
  const configBody = JSON.stringify(config)
  const send = staticFiles(webDir)

  return async (ctx, next) => {
    if (ctx.path !== '/contribute' && !ctx.path.startsWith('/contribute/')) {
      await next()
      return
    }
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD')
      throw new HttpError(405, 'method-not-allowed', 'the contribute page only answers GET and HEAD')
    ctx.set('Content-Security-Policy', csp)
    ctx.set('Cross-Origin-Opener-Policy', 'same-origin')
    ctx.set('Referrer-Policy', 'no-referrer')
    if (ctx.path === '/contribute/config.json') {
      ctx.set('Cache-Control', 'no-store')
      ctx.type = 'application/json'
      ctx.body = configBody
      return
    }
    const asset = ASSETS[ctx.path]
    if (asset === undefined) throw new HttpError(404, 'not-found', `no file ${ctx.path}`)
    await send(ctx, asset)
  }
}
