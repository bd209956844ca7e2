// Who is calling: every request to the API (everything under /v1/ but the public paths) is
// authenticated by its `Authorization: Bearer <key>` header, or taken as `anonymous` when the
// coordinator allows that, and takes a token from its owner's request bucket. The caller is left in
// `ctx.state.caller` for the routes.
import type { Context, Middleware } from 'koa'
import { timingSafeEqual } from 'node:crypto'
import type { CoordinatorTuning } from '../options.js'
import type { Store } from '../store/store.js'
import { ADMIN_QUOTA, ANONYMOUS, apiKeyDigest, type Quota } from './api-keys.js'
import { HttpError, quotaExceeded } from './http-error.js'

export interface Caller {
  /** Owner of what the caller creates: the key's name, or `anonymous`. */
  owner: string
  /** Admin keys see and control every owner's jobs and uploads. */
  admin: boolean
  quota: Quota
}

/**
 * Paths under /v1/ that anyone may call: job types, counters, volunteers' sign-up (its own limits),
 * their public records and claims (signed by the identity), and the leaderboard.
 */
export function isPublicPath(path: string): boolean {
  if (!path.startsWith('/v1/')) return true
  return (
    path === '/v1/job-types' ||
    path === '/v1/stats' ||
    path === '/v1/volunteers' ||
    path === '/v1/leaderboard' ||
    path.startsWith('/v1/volunteers/')
  )
}

/** The caller a route serves; set by `authMiddleware` for every non-public path. */
export function callerOf(ctx: Context): Caller {
  const caller = (ctx.state as { caller?: Caller }).caller
  if (caller === undefined)
    throw new Error(`no caller for ${ctx.path}: the route is not behind authMiddleware`)
  return caller
}

const HOW =
  'send an API key as "Authorization: Bearer <key>" (the CLI: --api-key or COHORT_API_KEY); ' +
  "keys are issued by the coordinator's operator (--api-keys-file)"

export function authMiddleware(init: { tuning: CoordinatorTuning; store: Store }): Middleware {
  const { tuning, store } = init
  const keys = tuning.apiKeys.map((k) => ({
    digest: Buffer.from(k.sha256, 'hex'),
    caller: {
      owner: k.name,
      admin: k.role === 'admin',
      quota: { ...(k.role === 'admin' ? ADMIN_QUOTA : tuning.submitterQuota), ...k.quota },
    } satisfies Caller,
  }))
  const anonymous: Caller = { owner: ANONYMOUS, admin: false, quota: tuning.anonymousQuota }
  const challenge = { 'WWW-Authenticate': 'Bearer realm="cohort"' }

  const identify = (ctx: Context): Caller => {
    const header = ctx.get('authorization')
    if (header === '') {
      if (tuning.anonymous) return anonymous
      throw new HttpError(401, 'unauthorized', `this coordinator needs an API key: ${HOW}`, {}, challenge)
    }
    const m = /^Bearer +([\x21-\x7e]{1,512})$/i.exec(header)
    if (m === null)
      throw new HttpError(401, 'unauthorized', `malformed Authorization header: ${HOW}`, {}, challenge)
    const digest = Buffer.from(apiKeyDigest(m[1] ?? ''), 'hex')
    // Every key is compared, in constant time, whichever matches.
    let found: Caller | undefined
    for (const k of keys) if (timingSafeEqual(k.digest, digest)) found = k.caller
    if (found === undefined)
      throw new HttpError(401, 'unauthorized', 'the API key is not known to this coordinator', {}, challenge)
    return found
  }

  return async (ctx, next) => {
    if (isPublicPath(ctx.path)) {
      await next()
      return
    }
    const caller = identify(ctx)
    const perMinute = caller.quota.requestsPerMinute
    if (perMinute !== null) {
      const waitMs = await store.takeToken(caller.owner, perMinute)
      if (waitMs > 0)
        throw quotaExceeded(
          'requestsPerMinute',
          `more than ${perMinute} requests per minute for ${caller.owner}; slow down`,
          waitMs / 1000,
        )
    }
    ;(ctx.state as { caller?: Caller }).caller = caller
    await next()
  }
}
