// One HTTP error class and one middleware that turns every error into application/problem+json.
import type { Context, Next } from 'koa'
import { errorFields, LimitError, ValidationError, type Logger } from '../../shared/index.js'

/**
 * An error with an HTTP status; `code` becomes the problem type, `extra` extra members, `headers`
 * extra response headers (Retry-After, WWW-Authenticate).
 */
export class HttpError extends Error {
  override name = 'HttpError'
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message)
  }
}

/** 429: the caller's `quota` is used up; it may try again after `retryAfterS` seconds. */
export function quotaExceeded(quota: string, message: string, retryAfterS: number): HttpError {
  const s = Math.max(1, Math.ceil(retryAfterS))
  return new HttpError(429, 'quota-exceeded', message, { quota, retryAfter: s }, { 'Retry-After': String(s) })
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
}

export function problemMiddleware(log: Logger, onError: () => void) {
  return async (ctx: Context, next: Next): Promise<void> => {
    try {
      await next()
      if (ctx.status === 404 && ctx.body === undefined) {
        throw new HttpError(404, 'not-found', `no route for ${ctx.method} ${ctx.path}`)
      }
    } catch (err) {
      let e: HttpError
      if (err instanceof HttpError) e = err
      else if (err instanceof ValidationError)
        e = new HttpError(422, 'invalid-request', err.message, { field: err.field })
      else if (err instanceof LimitError) e = new HttpError(413, 'too-large', err.message)
      else {
        log.error('request failed', { path: ctx.path, ...errorFields(err) })
        e = new HttpError(
          500,
          'internal',
          'the coordinator failed to handle this request; it has been logged',
        )
      }
      onError()
      ctx.status = e.status
      ctx.set(e.headers)
      ctx.type = 'application/problem+json'
      ctx.body = {
        type: `urn:cohort:problem:${e.code}`,
        title: TITLES[e.status] ?? 'Error',
        status: e.status,
        detail: e.message,
        instance: ctx.path,
        ...e.extra,
      }
    }
  }
}
