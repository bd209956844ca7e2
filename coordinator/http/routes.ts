// The routes a set of koa routers answers, as OpenAPI names them (`GET /v1/jobs/{id}`).
import type { Router } from '@koa/router'

export interface RouteInfo {
  /** Upper case: GET, POST, DELETE, ... (HEAD, which koa adds to every GET, is left out). */
  method: string
  /** OpenAPI path template: `/v1/jobs/{id}`. */
  path: string
}

/** `/v1/jobs/:id` → `/v1/jobs/{id}`; a trailing slash of a prefixed root route is dropped. */
export function openApiPath(koaPath: string): string {
  const path = koaPath.replace(/:([A-Za-z0-9_]+)/g, '{$1}')
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path
}

/** Every (method, path) the routers register, in registration order. */
export function routesOf(routers: readonly Router[]): RouteInfo[] {
  const out: RouteInfo[] = []
  for (const router of routers)
    for (const layer of router.stack) {
      // Every route here is a string path; a RegExp route could not be documented.
      const path = typeof layer.path === 'string' ? openApiPath(layer.path) : String(layer.path)
      for (const method of layer.methods) if (method !== 'HEAD') out.push({ method, path })
    }
  return out
}

export const routeKey = (r: RouteInfo): string => `${r.method} ${r.path}`
