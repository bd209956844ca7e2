// A volunteer's claim of a display name and a team, signed by one of its identity keys (envelope kind
// `volunteer.claim`) and POSTed to /v1/volunteers/claims. Defined once, used by the coordinator
// (coordinator/http/volunteers-routes.ts), the CLI (`cohort worker claim`) and any other client.
//
// Each identity signs its own claim: a volunteer with several machines runs `cohort worker claim`
// with each identity file, naming the same name and team (docs/volunteers.md says why an owner key
// does not sign for its identities). A claim carries its signing time `at` (refused outside
// CLAIM_FRESH_MS of the coordinator's clock) and a random nonce (refused when seen before), and it
// never undoes a later claim of the same identity.
//
// Names and teams are shown to everyone (the /stats page, the leaderboard), so they are short and of
// a safe character set: letters and digits of any script, and inside them spaces and `_ . -`. No
// markup, quotes, control or formatting characters (bidirectional overrides, zero-width joiners).
import { toBase64Url } from './bytes.js'
import { ValidationError } from './errors.js'
import { PEER_ID_PATTERN } from './protocol.js'
import { expectRecord } from './schema.js'
import { PUBLIC_KEY_BYTES, SIGNATURE_BYTES, seal, type Identity, type SignedEnvelope } from './signing.js'
import { base64UrlField, patternField } from './volunteer-signup.js'

export const CLAIM_VERSION = 1 as const

/** Longest display name and team, in characters (code points). */
export const MAX_NAME_CHARS = 32
/** A claim signed further than this from the coordinator's clock is refused. */
export const CLAIM_FRESH_MS = 5 * 60_000
/** The largest claim request a coordinator reads. */
export const MAX_CLAIM_BODY_BYTES = 2048
/** A claim nonce: base64url of 16 random bytes. */
export const CLAIM_NONCE_PATTERN = /^[A-Za-z0-9_-]{22}$/

/** One name or team: starts and ends with a letter or digit; spaces and `_ . -` only inside. */
const NAME_PATTERN = /^[\p{L}\p{N}](?:[\p{L}\p{M}\p{N} _.-]*[\p{L}\p{M}\p{N}])?$/u

/** What an identity signs (envelope kind `volunteer.claim`). */
export interface VolunteerClaim {
  type: 'volunteer.claim'
  v: 1
  /** The claiming identity: base64url of its public key; must be the envelope's signer. */
  peerId: string
  /** Display name shown with its credit. */
  name: string
  /** Team; absent: the identity leaves any team. */
  team?: string
  /** When it was signed, ms since the epoch. */
  at: number
  /** Random, base64url of 16 bytes: a claim is applied once. */
  nonce: string
}

/** The POST /v1/volunteers/claims body: the signed envelope in JSON, bytes as base64url. */
export interface ClaimRequest {
  v: 1
  body: string
  signer: string
  sig: string
}

/**
 * Checks a display name or team (`field` names it in the refusal): at most MAX_NAME_CHARS characters
 * of the safe set, in Unicode normal form C.
 */
export function checkDisplayName(value: unknown, field: string): string {
  if (typeof value !== 'string') throw new ValidationError(field, 'must be a string')
  const chars = [...value].length
  if (chars === 0) throw new ValidationError(field, 'must not be empty')
  if (chars > MAX_NAME_CHARS)
    throw new ValidationError(field, `is ${chars} characters long; at most ${MAX_NAME_CHARS}`)
  if (!NAME_PATTERN.test(value) || value.normalize('NFC') !== value)
    throw new ValidationError(
      field,
      'may hold letters and digits, and inside them spaces and _ . - only (no markup, quotes or control characters)',
    )
  if (/ {2}/.test(value)) throw new ValidationError(field, 'must not hold two spaces in a row')
  return value
}

/** Signs a claim of `name` (and `team`) with `identity`, as of `now`. */
export async function signClaim(
  identity: Identity,
  claim: { name: string; team?: string | undefined },
  now = Date.now(),
): Promise<ClaimRequest> {
  const payload: VolunteerClaim = {
    type: 'volunteer.claim',
    v: CLAIM_VERSION,
    peerId: identity.id,
    name: checkDisplayName(claim.name, 'name'),
    ...(claim.team === undefined ? {} : { team: checkDisplayName(claim.team, 'team') }),
    at: now,
    nonce: toBase64Url(crypto.getRandomValues(new Uint8Array(16))),
  }
  const env = await seal('volunteer.claim', payload, identity)
  return {
    v: CLAIM_VERSION,
    body: toBase64Url(env.body),
    signer: toBase64Url(env.signer),
    sig: toBase64Url(env.sig),
  }
}

/** Checks a ClaimRequest's shape; ValidationError names the field. */
export function parseClaimRequest(value: unknown): SignedEnvelope {
  const r = expectRecord(value, 'claim request')
  if (r['v'] !== CLAIM_VERSION) throw new ValidationError('v', `must be ${CLAIM_VERSION}`)
  for (const k of Object.keys(r))
    if (!['v', 'body', 'signer', 'sig'].includes(k)) throw new ValidationError(k, 'is not a field of a claim')
  return {
    v: 1,
    kind: 'volunteer.claim',
    body: base64UrlField(r, 'body', 1, 1024),
    signer: base64UrlField(r, 'signer', PUBLIC_KEY_BYTES),
    sig: base64UrlField(r, 'sig', SIGNATURE_BYTES),
  }
}

/** Checks a decoded claim payload; ValidationError names the field. */
export function parseClaim(value: unknown): VolunteerClaim {
  const r = expectRecord(value, 'claim')
  if (r['type'] !== 'volunteer.claim') throw new ValidationError('type', 'must be "volunteer.claim"')
  if (r['v'] !== CLAIM_VERSION) throw new ValidationError('v', `must be ${CLAIM_VERSION}`)
  const at = r['at']
  if (typeof at !== 'number' || !Number.isSafeInteger(at) || at < 0)
    throw new ValidationError('at', 'must be a time in milliseconds since the epoch')
  return {
    type: 'volunteer.claim',
    v: 1,
    peerId: patternField(r, 'peerId', PEER_ID_PATTERN, "the volunteer's id (43 base64url characters)"),
    name: checkDisplayName(r['name'], 'name'),
    ...(r['team'] === undefined ? {} : { team: checkDisplayName(r['team'], 'team') }),
    at,
    nonce: patternField(r, 'nonce', CLAIM_NONCE_PATTERN, '16 random bytes in base64url (22 characters)'),
  }
}
