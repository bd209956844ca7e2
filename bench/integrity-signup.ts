// How a simulated volunteer of the integrity benchmark comes to be: it signs up through the
// coordinator's real sign-up endpoint (challenge, proof of work, signed payload) as if from a network
// address of its own, optionally naming an owner, and connects to NATS with the credentials it got.
//
// Addresses: every volunteer runs in this process, so the sign-up arrives from loopback; the address
// it stands for travels in `X-Forwarded-For`, which a coordinator that trusts loopback as a proxy
// takes as the client's (integrity-tuning.ts turns that on where the coordinator has the option; a
// coordinator without it sees loopback for all, as before).
// Owners: the identities of one owner (a Sybil group, or one person's machines) link themselves to
// one owner key in their signed sign-up payload: `owner` (the owner's peer id) and `ownerSig` (the
// owner's detached Ed25519 signature, tag `volunteer.owner`, over the msgpack of
// `{ type: 'volunteer.owner', v: 1, peerId }`). A coordinator that does not know the fields ignores them.
import { connect } from '@nats-io/transport-node'
import { jwtAuthenticator, type NatsConnection } from '@nats-io/nats-core'
import { createUser } from '@nats-io/nkeys'
import {
  concatBytes,
  encode,
  inboxPrefixFor,
  parseSignupChallenge,
  parseSignupReply,
  powPrefix,
  seal,
  sign,
  signupRequest,
  solvePow,
  toBase64Url,
  utf8,
  type Identity,
} from '../shared/index.js'

export interface SimulatedSignup {
  coordinatorUrl: string
  identity: Identity
  /** The client address the sign-up stands for (sent as X-Forwarded-For). */
  address: string
  /** The owner this identity declares, when it declares one. */
  owner?: Identity | undefined
}

const TIMEOUT_MS = 15_000

/** The sign-up payload's fields that link identity `peerId` to `owner`. */
async function ownerLink(owner: Identity, peerId: string): Promise<{ owner: string; ownerSig: string }> {
  const consent = encode({ type: 'volunteer.owner', v: 1, peerId })
  const sig = await sign(owner, concatBytes(utf8('cohort/v1/volunteer.owner\u0000'), consent))
  return { owner: owner.id, ownerSig: toBase64Url(sig) }
}

async function call(url: URL, address: string, init: RequestInit): Promise<unknown> {
  const response = await fetch(url, {
    ...init,
    headers: { ...(init.headers as Record<string, string>), 'x-forwarded-for': address },
    signal: AbortSignal.timeout(TIMEOUT_MS),
  })
  const text = await response.text()
  if (!response.ok) throw new Error(`sign-up refused (${response.status}): ${text.slice(0, 200)}`)
  return JSON.parse(text) as unknown
}

/** Signs up as `identity` from `address`; returns the user JWT and the nkey seed it is for. */
export async function signUpSimulated(o: SimulatedSignup): Promise<{ jwt: string; seed: Uint8Array }> {
  const base = o.coordinatorUrl.endsWith('/') ? o.coordinatorUrl : `${o.coordinatorUrl}/`
  const user = createUser()
  const natsKey = user.getPublicKey()
  const challenge = parseSignupChallenge(
    await call(new URL('v1/volunteers/challenge', base), o.address, { method: 'GET' }),
  )
  const prefix = await powPrefix(challenge.challenge, o.identity.publicKey, natsKey)
  const { nonce } = await solvePow(prefix, challenge.bits, { timeoutMs: 600_000 })
  const payload = {
    type: 'volunteer.signup',
    v: 1,
    peerId: o.identity.id,
    natsKey,
    challenge: challenge.challenge,
    ...(o.owner === undefined ? {} : await ownerLink(o.owner, o.identity.id)),
  }
  const envelope = await seal('volunteer.signup', payload, o.identity)
  const reply = parseSignupReply(
    await call(new URL('v1/volunteers', base), o.address, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(signupRequest(envelope, nonce)),
    }),
  )
  if (reply.peerId !== o.identity.id) throw new Error(`sign-up answered for ${reply.peerId}`)
  return { jwt: reply.jwt, seed: user.getSeed() }
}

/**
 * The volunteer's NATS connection: signed up as `signup` describes, or (`signup` undefined: an
 * external NATS that lets volunteers in without credentials) connected as it is.
 */
export async function connectSimulated(
  natsUrl: string,
  identity: Identity,
  signup: SimulatedSignup | undefined,
): Promise<NatsConnection> {
  const options = { servers: natsUrl, name: 'bench-integrity', inboxPrefix: inboxPrefixFor(identity.id) }
  if (signup === undefined) return connect(options)
  const { jwt, seed } = await signUpSimulated(signup)
  return connect({ ...options, authenticator: jwtAuthenticator(jwt, seed) })
}
