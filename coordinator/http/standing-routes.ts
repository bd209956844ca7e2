// Volunteers' public standing over HTTP: GET /v1/volunteers/:id (an identity's record),
// POST /v1/volunteers/claims (a signed claim of a display name and team) and GET /v1/leaderboard
// (identities or teams by credit). Public, like sign-up: nothing here is private, and a claim is
// signed by the identity it names. Mounted after the sign-up router, whose /challenge comes first.
import { Router } from '@koa/router'
import {
  CLAIM_FRESH_MS,
  MAX_CLAIM_BODY_BYTES,
  MAX_LEADERBOARD_PAGE,
  open,
  parseClaim,
  parseClaimRequest,
  PEER_ID_PATTERN,
  SignatureError,
  toBase64Url,
  ValidationError,
  type VolunteerRecord,
} from '../../shared/index.js'
import type { VolunteerStore } from '../store/volunteer-store.js'
import { readJsonBody } from './body.js'
import { HttpError } from './http-error.js'

export interface StandingRoutesInit {
  volunteers: VolunteerStore
  /** Clock, ms (tests give their own). Default Date.now. */
  now?: () => number
}

/** The deepest place a leaderboard page may start at. */
export const MAX_LEADERBOARD_OFFSET = 10_000
const DEFAULT_PAGE = 20

function queryInt(value: unknown, field: string, min: number, max: number, dflt: number): number {
  if (value === undefined) return dflt
  const n = typeof value === 'string' && /^[0-9]{1,6}$/.test(value) ? Number(value) : NaN
  if (!(n >= min && n <= max))
    throw new HttpError(400, 'bad-query', `${field} must be an integer from ${min} to ${max}`, { field })
  return n
}

/** A signed claim, checked: every refusal names the field at fault. */
async function checkedClaim(body: unknown, now: number): Promise<ReturnType<typeof parseClaim>> {
  const env = parseClaimRequest(body)
  let decoded: unknown
  try {
    decoded = await open(env)
  } catch (err) {
    if (err instanceof SignatureError)
      throw new ValidationError('sig', 'does not verify with the signer key over body', { cause: err })
    throw new ValidationError('body', 'is not a signed claim', { cause: err })
  }
  const claim = parseClaim(decoded)
  if (claim.peerId !== toBase64Url(env.signer))
    throw new ValidationError(
      'peerId',
      "must be the signer's own id: an identity claims a name for itself only",
    )
  if (Math.abs(now - claim.at) > CLAIM_FRESH_MS)
    throw new ValidationError(
      'at',
      `is ${Math.round((now - claim.at) / 1000)} s from the coordinator's clock; a claim is fresh for ${CLAIM_FRESH_MS / 1000} s`,
    )
  return claim
}

export function standingRouter(init: StandingRoutesInit): Router {
  const { volunteers } = init
  const now = init.now ?? Date.now
  const router = new Router()

  const recordOf = async (id: string): Promise<VolunteerRecord> => {
    const rec = await volunteers.record(id)
    if (rec === undefined)
      throw new HttpError(404, 'unknown-volunteer', `no volunteer ${id} is known to this cluster`, {
        field: 'peerId',
      })
    return rec
  }

  router.get('/v1/volunteers/:id', async (ctx) => {
    const id = ctx.params['id'] ?? ''
    if (!PEER_ID_PATTERN.test(id))
      throw new HttpError(400, 'bad-id', "a volunteer's id is its public key: 43 base64url characters", {
        field: 'id',
      })
    ctx.set('Cache-Control', 'no-cache')
    ctx.body = await recordOf(id)
  })

  router.post('/v1/volunteers/claims', async (ctx) => {
    const claim = await checkedClaim(await readJsonBody(ctx, MAX_CLAIM_BODY_BYTES), now())
    await recordOf(claim.peerId)
    // A nonce is remembered as long as a claim carrying it could still be fresh.
    const outcome = await volunteers.claim(
      {
        id: claim.peerId,
        name: claim.name,
        at: claim.at,
        nonce: claim.nonce,
        ...(claim.team === undefined ? {} : { team: claim.team }),
      },
      2 * CLAIM_FRESH_MS + 60_000,
    )
    if (outcome === 'replayed') throw new ValidationError('nonce', 'was seen before: a claim is applied once')
    if (outcome === 'stale')
      throw new ValidationError('at', 'is not later than the last claim applied for this identity')
    ctx.set('Cache-Control', 'no-store')
    ctx.body = await recordOf(claim.peerId)
  })

  router.get('/v1/leaderboard', async (ctx) => {
    const by = ctx.query['by'] ?? 'volunteer'
    if (by !== 'volunteer' && by !== 'team')
      throw new HttpError(400, 'bad-query', 'by must be "volunteer" or "team"', { field: 'by' })
    const offset = queryInt(ctx.query['offset'], 'offset', 0, MAX_LEADERBOARD_OFFSET, 0)
    const limit = queryInt(ctx.query['limit'], 'limit', 1, MAX_LEADERBOARD_PAGE, DEFAULT_PAGE)
    ctx.set('Cache-Control', 'no-cache')
    ctx.body =
      by === 'team' ? await volunteers.teams(offset, limit) : await volunteers.volunteers(offset, limit)
  })

  return router
}
