// Volunteer sign-up over HTTP (shared/volunteer-signup.ts): GET /v1/volunteers/challenge and
// POST /v1/volunteers. Public: anyone may sign up, at the cost of a proof of work and within a limit
// per source address; the answer is NATS credentials for the volunteer's own subjects.
import { Router } from '@koa/router'
import { MAX_SIGNUP_BODY_BYTES, ProtocolError } from '../../shared/index.js'
import type { ClientNetworkRules } from '../credentials/client-network.js'
import { RateLimitedError, type SignupService } from '../credentials/signup-service.js'
import { readJsonBody } from './body.js'
import { HttpError } from './http-error.js'

export interface VolunteersRoutesInit {
  /** Undefined when this coordinator cannot issue credentials (no NATS account seed). */
  signup: SignupService | undefined
  /** Who the client is: the socket's peer, or the forwarded address behind a trusted proxy. */
  networks: Pick<ClientNetworkRules, 'clientAddress'>
}

/** RateLimitedError → 429 with Retry-After; a body that is not a map → 400. */
async function answer<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work()
  } catch (err) {
    if (err instanceof RateLimitedError) {
      const seconds = Math.max(1, Math.ceil(err.retryAfterMs / 1000))
      throw new HttpError(
        429,
        'rate-limited',
        err.message,
        { retryAfter: seconds },
        { 'Retry-After': String(seconds) },
      )
    }
    if (err instanceof ProtocolError) throw new HttpError(400, 'malformed-request', err.message)
    throw err
  }
}

export function volunteersRouter(init: VolunteersRoutesInit): Router {
  const router = new Router({ prefix: '/v1/volunteers' })
  const service = (): SignupService => {
    if (init.signup === undefined)
      throw new HttpError(
        503,
        'signup-unavailable',
        'this coordinator issues no volunteer credentials (it was started without a NATS account seed)',
      )
    return init.signup
  }
  // koa's ctx.ip is the socket's peer (the app does not set `proxy`): forwarded headers count
  // only from the trusted proxies of the tuning.
  const client = (ctx: { ip: string; get(header: string): string }): string => {
    const forwarded = ctx.get('X-Forwarded-For')
    return init.networks.clientAddress(ctx.ip, forwarded === '' ? undefined : forwarded)
  }

  router.get('/challenge', async (ctx) => {
    const s = service()
    ctx.set('Cache-Control', 'no-store')
    ctx.body = await answer(() => s.challenge(client(ctx)))
  })

  router.post('/', async (ctx) => {
    const s = service()
    const body = await readJsonBody(ctx, MAX_SIGNUP_BODY_BYTES)
    ctx.set('Cache-Control', 'no-store')
    ctx.status = 201
    ctx.body = await answer(() => s.signUp(client(ctx), body))
  })

  return router
}
