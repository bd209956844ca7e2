// Volunteer sign-up: the HTTP messages a worker exchanges with a coordinator to get NATS credentials
// of its own, the proof of work it attaches, and the limits its credentials carry. Defined once, used
// by the coordinator (coordinator/credentials, coordinator/http/volunteers-routes.ts), the daemon and
// the contribute page.
//
// 1. GET /v1/volunteers/challenge answers a SignupChallenge: a random challenge, short-lived and
//    single-use, and the proof-of-work difficulty in bits.
// 2. The worker makes an nkey user pair of its own, signs a SignupPayload naming its identity, the
//    nkey's public half and the challenge with its identity key (envelope kind `volunteer.signup`),
//    finds a proof of work bound to all three (shared/proof-of-work.ts) and POSTs a SignupRequest.
// 3. The coordinator answers a SignupReply: a user JWT for that nkey, with permissions derived from
//    the identity, valid until `expiresAt`. The worker signs up again before then.
//
// Owner: by default an identity is its own owner. A volunteer running several machines links their
// identities with one owner key: each sign-up payload then names the owner's public key and carries
// the owner's detached signature (tag `volunteer.owner`) over an OwnerConsent naming the identity, so
// only the owner key's holder can link an identity to it. Replicas of one unit never go to two
// identities of one owner (docs/security.md, "Replica placement").
import { fromBase64Url, toBase64Url } from './bytes.js'
import { encode } from './codec.js'
import { ValidationError } from './errors.js'
import { PEER_LIMITS } from './peer-protocol.js'
import { PEER_ID_PATTERN } from './protocol.js'
import { expectRecord } from './schema.js'
import {
  PUBLIC_KEY_BYTES,
  SIGNATURE_BYTES,
  signDetached,
  verifyDetached,
  type Identity,
  type SignedEnvelope,
} from './signing.js'

export const SIGNUP_VERSION = 1 as const

/** A public user nkey: `U` and 55 more base32 characters. */
export const NATS_USER_KEY_PATTERN = /^U[A-Z2-7]{55}$/
/** A challenge: base64url of 32 random bytes. */
export const CHALLENGE_PATTERN = /^[A-Za-z0-9_-]{43}$/
/** A detached Ed25519 signature: base64url of 64 bytes. */
const SIGNATURE_PATTERN = /^[A-Za-z0-9_-]{86}$/
/** A proof-of-work nonce: 16 hex digits (8 bytes). */
export const POW_NONCE_PATTERN = /^[0-9a-f]{16}$/

/**
 * What a volunteer's NATS credentials allow at most, enforced by nats-server from the user JWT:
 * subscriptions it may hold, the largest message it may publish (a peer message of the largest
 * size plus its envelope), and bytes it may send (-1: no limit; nats-server 2.9 does not enforce a
 * per-user data limit, and each request is bounded by the services that answer it).
 */
export const VOLUNTEER_NATS_LIMITS = {
  subs: 64,
  payloadBytes: PEER_LIMITS.maxMessageBytes + 64 * 1024,
  dataBytes: -1,
  /** A volunteer may answer a request it received once, within this time. */
  responseTtlMs: 120_000,
} as const

export interface SignupChallenge {
  v: 1
  /** base64url, 32 random bytes; valid once, until `expiresAt`. */
  challenge: string
  /** Leading zero bits the proof-of-work hash must have. */
  bits: number
  /** Milliseconds since the epoch. */
  expiresAt: number
}

/** What the volunteer signs with its identity key (envelope kind `volunteer.signup`). */
export interface SignupPayload {
  type: 'volunteer.signup'
  v: 1
  /** The volunteer's id: base64url of its Ed25519 public key; must be the envelope's signer. */
  peerId: string
  /** The public user nkey the JWT is for; the volunteer keeps the seed. */
  natsKey: string
  challenge: string
  /** Optional: the owner's public key (base64url), linking this identity to the owner's others. */
  owner?: string
  /** With `owner`: base64url of the owner's detached signature over `ownerConsentBody(peerId)`. */
  ownerSig?: string
}

/** What an owner signs (detached, tag `volunteer.owner`) to link identity `peerId` to itself. */
export interface OwnerConsent {
  type: 'volunteer.owner'
  v: 1
  peerId: string
}

/** The bytes an owner key signs to link `peerId`: msgpack of its OwnerConsent. */
export function ownerConsentBody(peerId: string): Uint8Array {
  const consent: OwnerConsent = { type: 'volunteer.owner', v: 1, peerId }
  return encode(consent)
}

/** The `owner` and `ownerSig` fields of a sign-up payload that links `peerId` to `owner`. */
export async function ownerLink(
  owner: Identity,
  peerId: string,
): Promise<{ owner: string; ownerSig: string }> {
  const sig = await signDetached('volunteer.owner', ownerConsentBody(peerId), owner)
  return { owner: owner.id, ownerSig: toBase64Url(sig) }
}

/** Whether a parsed payload's owner signature links its identity to its owner (true without owner). */
export async function ownerLinkValid(payload: SignupPayload): Promise<boolean> {
  if (payload.owner === undefined || payload.ownerSig === undefined) return payload.owner === undefined
  return verifyDetached(
    'volunteer.owner',
    ownerConsentBody(payload.peerId),
    fromBase64Url(payload.owner),
    fromBase64Url(payload.ownerSig),
  )
}

/** The POST /v1/volunteers body: the signed envelope in JSON (bytes as base64url), and the proof of work. */
export interface SignupRequest {
  v: 1
  /** base64url of the signed bytes (msgpack of a SignupPayload). */
  body: string
  /** base64url of the signer's 32-byte public key. */
  signer: string
  /** base64url of the 64-byte signature. */
  sig: string
  /** The proof-of-work nonce, 16 hex digits. */
  pow: string
}

export interface SignupReply {
  v: 1
  /** The volunteer's id the credentials are for. */
  peerId: string
  /** NATS user JWT for the volunteer's nkey. */
  jwt: string
  /** Milliseconds since the epoch; the JWT expires then. */
  expiresAt: number
  /** The owner the coordinator records for this identity (its own id when it is not linked). */
  owner?: string
}

/** The largest SignupRequest body a coordinator reads. */
export const MAX_SIGNUP_BODY_BYTES = 4096

/** A string field matching `pattern`; ValidationError naming the field otherwise. */
export function patternField(
  r: Record<string, unknown>,
  field: string,
  pattern: RegExp,
  what: string,
): string {
  const v = r[field]
  if (typeof v !== 'string' || !pattern.test(v)) throw new ValidationError(field, `must be ${what}`)
  return v
}

/** A base64url field of `bytes`..`max` bytes; ValidationError naming the field otherwise. */
export function base64UrlField(
  r: Record<string, unknown>,
  field: string,
  bytes: number,
  max = bytes,
): Uint8Array {
  const v = r[field]
  let out: Uint8Array | undefined
  if (typeof v === 'string' && v.length <= Math.ceil((max * 4) / 3)) {
    try {
      out = fromBase64Url(v)
    } catch {
      out = undefined
    }
  }
  if (out === undefined || out.length < bytes || out.length > max)
    throw new ValidationError(
      field,
      bytes === max ? `must be ${bytes} bytes in base64url` : `must be base64url`,
    )
  return out
}

/** Checks a SignupRequest's shape; ValidationError names the field. */
export function parseSignupRequest(value: unknown): { envelope: SignedEnvelope; pow: string } {
  const r = expectRecord(value, 'sign-up request')
  if (r['v'] !== SIGNUP_VERSION) throw new ValidationError('v', `must be ${SIGNUP_VERSION}`)
  return {
    envelope: {
      v: 1,
      kind: 'volunteer.signup',
      body: base64UrlField(r, 'body', 1, 1024),
      signer: base64UrlField(r, 'signer', PUBLIC_KEY_BYTES),
      sig: base64UrlField(r, 'sig', SIGNATURE_BYTES),
    },
    pow: patternField(r, 'pow', POW_NONCE_PATTERN, '16 lowercase hex digits'),
  }
}

/** The JSON form of a signed sign-up envelope plus its proof of work. */
export function signupRequest(envelope: SignedEnvelope, pow: string): SignupRequest {
  return {
    v: SIGNUP_VERSION,
    body: toBase64Url(envelope.body),
    signer: toBase64Url(envelope.signer),
    sig: toBase64Url(envelope.sig),
    pow,
  }
}

export function parseSignupPayload(value: unknown): SignupPayload {
  const r = expectRecord(value, 'sign-up payload')
  if (r['type'] !== 'volunteer.signup') throw new ValidationError('type', 'must be "volunteer.signup"')
  if (r['v'] !== SIGNUP_VERSION) throw new ValidationError('v', `must be ${SIGNUP_VERSION}`)
  return {
    type: 'volunteer.signup',
    v: 1,
    peerId: patternField(r, 'peerId', PEER_ID_PATTERN, "the volunteer's id (43 base64url characters)"),
    natsKey: patternField(
      r,
      'natsKey',
      NATS_USER_KEY_PATTERN,
      'a public user nkey (U and 55 base32 characters)',
    ),
    challenge: patternField(
      r,
      'challenge',
      CHALLENGE_PATTERN,
      'a challenge from GET /v1/volunteers/challenge',
    ),
    ...(r['owner'] === undefined
      ? {}
      : {
          owner: patternField(
            r,
            'owner',
            PEER_ID_PATTERN,
            "the owner's public key (43 base64url characters)",
          ),
          ownerSig: patternField(
            r,
            'ownerSig',
            SIGNATURE_PATTERN,
            "the owner's signature (86 base64url characters)",
          ),
        }),
  }
}

export function parseSignupChallenge(value: unknown): SignupChallenge {
  const r = expectRecord(value, 'sign-up challenge')
  const bits = r['bits']
  const expiresAt = r['expiresAt']
  if (typeof bits !== 'number' || !Number.isInteger(bits) || bits < 0 || bits > 32)
    throw new ValidationError('bits', 'must be an integer in 0..32')
  if (typeof expiresAt !== 'number' || !Number.isSafeInteger(expiresAt))
    throw new ValidationError('expiresAt', 'must be a time in milliseconds')
  return {
    v: 1,
    challenge: patternField(r, 'challenge', CHALLENGE_PATTERN, '43 base64url characters'),
    bits,
    expiresAt,
  }
}

export function parseSignupReply(value: unknown): SignupReply {
  const r = expectRecord(value, 'sign-up reply')
  const expiresAt = r['expiresAt']
  if (typeof expiresAt !== 'number' || !Number.isSafeInteger(expiresAt))
    throw new ValidationError('expiresAt', 'must be a time in milliseconds')
  return {
    v: 1,
    peerId: patternField(r, 'peerId', PEER_ID_PATTERN, '43 base64url characters'),
    jwt: patternField(r, 'jwt', /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, 'a JWT'),
    expiresAt,
    ...(r['owner'] === undefined
      ? {}
      : { owner: patternField(r, 'owner', PEER_ID_PATTERN, '43 base64url characters') }),
  }
}
