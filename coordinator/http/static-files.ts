// The built browser files (dist/web) served by the coordinator: each read once (a failed read is
// tried again next time), with an ETag and `Cache-Control: no-cache`, 304 when fresh, and 503 with
// the way out when the bundle is missing.
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import type { Context, Middleware } from 'koa'
import { HttpError } from './http-error.js'

export interface Asset {
  file: string
  type: string
}

export const JS = 'text/javascript; charset=utf-8'
export const HTML = 'text/html; charset=utf-8'
export const CSS = 'text/css; charset=utf-8'

/** Where the build puts browser files: dist/web, found from this file's place in dist/. */
export const DEFAULT_WEB_DIR = fileURLToPath(new URL('../../web/', import.meta.url))

/** Serves files of `webDir`: `send(ctx, asset)` answers the request with the file. */
export function staticFiles(webDir: string): (ctx: Context, asset: Asset) => Promise<void> {
  // The built files do not change while the process runs.
  const cache = new Map<string, Promise<{ bytes: Buffer; etag: string }>>()
  const load = (file: string): Promise<{ bytes: Buffer; etag: string }> => {
    let p = cache.get(file)
    if (p === undefined) {
      p = readFile(`${webDir}/${file}`).then((bytes) => ({
        bytes,
        etag: `"${createHash('sha256').update(bytes).digest('base64url').slice(0, 22)}"`,
      }))
      p.catch(() => cache.delete(file))
      cache.set(file, p)
    }
    return p
  }
  return async (ctx, asset) => {
    let file: { bytes: Buffer; etag: string }
    try {
      file = await load(asset.file)
    } catch {
      throw new HttpError(
        503,
        'not-built',
        `the browser bundle ${asset.file} is missing from ${webDir}: run \`npm run build\``,
      )
    }
    ctx.status = 200
    ctx.etag = file.etag
    ctx.set('Cache-Control', 'no-cache')
    if (ctx.fresh) {
      ctx.status = 304
      return
    }
    ctx.type = asset.type
    ctx.body = file.bytes
  }
}

/**
 * The files of a page built as `<name>.html`, `<name>.js` and `<name>.css`, served under `root`, with
 * Cohort's icon (without one a browser asks for /favicon.ico, a 404 on every visit).
 */
export function pageAssets(root: string, name: string): Record<string, Asset> {
  return {
    [root]: { file: `${name}.html`, type: HTML },
    [`${root}/`]: { file: `${name}.html`, type: HTML },
    [`${root}/app.js`]: { file: `${name}.js`, type: JS },
    [`${root}/app.css`]: { file: `${name}.css`, type: CSS },
    [`${root}/${name}.js.map`]: { file: `${name}.js.map`, type: 'application/json' },
    [`${root}/icon.svg`]: { file: 'icon.svg', type: 'image/svg+xml' },
  }
}

/**
 * A page of built files under `root` (`/dashboard`, `/stats`): GET and HEAD only, each answer with
 * `csp` and no referrer, the paths of `assets` only (404 for the rest).
 */
export function pageMiddleware(
  root: string,
  assets: Record<string, Asset>,
  csp: string,
  webDir: string = DEFAULT_WEB_DIR,
): Middleware {
  const send = staticFiles(webDir)
  return async (ctx, next) => {
    if (ctx.path !== root && !ctx.path.startsWith(`${root}/`)) {
      await next()
      return
    }
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD')
      throw new HttpError(405, 'method-not-allowed', `${root} only answers GET and HEAD`)
    ctx.set('Content-Security-Policy', csp)
    ctx.set('Cross-Origin-Opener-Policy', 'same-origin')
    ctx.set('Referrer-Policy', 'no-referrer')
    const asset = assets[ctx.path]
    if (asset === undefined) throw new HttpError(404, 'not-found', `no file ${ctx.path}`)
    await send(ctx, asset)
  }
}
