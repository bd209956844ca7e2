// Volunteer sign-up (shared/volunteer-signup.ts): single-use challenges kept in Redis, so any
// coordinator of a deployment can answer a sign-up whose challenge another one issued; a proof of
// work bound to the challenge and the identity; a signature by the identity key; a fixed-window limit
// per source address shared in Redis. A sign-up that passes gets a user JWT for the volunteer's nkey,
// and the identity's owner and network are recorded for replica placement (volunteer-attributes.ts).
import type { Redis } from 'ioredis'
import {
  checkPow,
  open,
  ownerLinkValid,
  parseSignupPayload,
  parseSignupRequest,
  randomBytes,
  SignatureError,
  toBase64Url,
  ValidationError,
  type Logger,
  type SignupChallenge,
  type SignupReply,
} from '../../shared/index.js'
import { powPrefix } from '../../shared/proof-of-work.js'
import type { Counters } from '../counters.js'
import type { ClientNetworkRules } from './client-network.js'
import { addressKey, createRateLimit } from './rate-limit.js'
import { createVolunteerAttributes } from './volunteer-attributes.js'
import type { VolunteerIssuer } from './volunteer-issuer.js'

export interface SignupTuning {
  /** Leading zero bits of the proof of work. */
  signupPowBits: number
  /** How long a challenge may be answered. */
  signupChallengeTtlMs: number
  /** Sign-up attempts allowed per source address (IPv4 address or IPv6 /64) per window. */
  signupPerAddress: number
  signupWindowMs: number
}

/** Refused for too many attempts from one address; retry after `retryAfterMs`. */
export class RateLimitedError extends Error {
  override name = 'RateLimitedError'
  constructor(
    message: string,
    readonly retryAfterMs: number,
  ) {
    super(message)
  }
}

export interface SignupServiceInit {
  redis: Redis
  /** Redis key prefix of the deployment. */
  prefix: string
  issuer: VolunteerIssuer
  tuning: SignupTuning
  /** The placement network of a client address (client-network.ts). */
  networks: Pick<ClientNetworkRules, 'networkOf'>
  counters: Counters
  log: Logger
  now?: () => number
  /** Called for each identity that signed up, before its credentials are returned. */
  onSignedUp?: (peerId: string) => Promise<void>
}

export interface SignupService {
  /** A fresh single-use challenge for a client at `address`. */
  challenge(address: string): Promise<SignupChallenge>
  /** Checks a POST /v1/volunteers body from `address` and issues credentials. */
  signUp(address: string, body: unknown): Promise<SignupReply>
}

/** Challenges a client may fetch per sign-up it may attempt: a few retries, not a flood of keys. */
const CHALLENGES_PER_SIGNUP = 4

export function createSignupService(init: SignupServiceInit): SignupService {
  const { redis, tuning, counters, log } = init
  const now = init.now ?? Date.now
  const challengeKey = (c: string): string => `${init.prefix}signup:challenge:${c}`
  const attributes = createVolunteerAttributes({ redis, prefix: init.prefix })
  const attempts = createRateLimit(
    redis,
    `${init.prefix}signup:rate:`,
    tuning.signupPerAddress,
    tuning.signupWindowMs,
  )
  const challenges = createRateLimit(
    redis,
    `${init.prefix}signup:challenge-rate:`,
    tuning.signupPerAddress * CHALLENGES_PER_SIGNUP,
    tuning.signupWindowMs,
  )

  const limit = async (which: typeof attempts, address: string, what: string): Promise<void> => {
    const r = await which.hit(addressKey(address))
    if (!r.ok) {
      counters.signupsRefused++
      throw new RateLimitedError(
        `too many ${what} from this address; try again in ${Math.ceil(r.retryAfterMs / 1000)} s`,
        r.retryAfterMs,
      )
    }
  }

  const refuse = (err: unknown): never => {
    counters.signupsRefused++
    throw err
  }

  return {
    async challenge(address) {
      await limit(challenges, address, 'sign-up challenges')
      const challenge = toBase64Url(randomBytes(32))
      const expiresAt = now() + tuning.signupChallengeTtlMs
      // The difficulty is stored with the challenge: a change of setting never strands a client.
      await redis.set(
        challengeKey(challenge),
        String(tuning.signupPowBits),
        'PX',
        tuning.signupChallengeTtlMs,
      )
      return { v: 1, challenge, bits: tuning.signupPowBits, expiresAt }
    },

    async signUp(address, body) {
      await limit(attempts, address, 'sign-ups')
      let request: ReturnType<typeof parseSignupRequest>
      let payload: ReturnType<typeof parseSignupPayload>
      try {
        request = parseSignupRequest(body)
        let decoded: unknown
        try {
          decoded = await open(request.envelope)
        } catch (err) {
          if (err instanceof SignatureError)
            throw new ValidationError('sig', 'does not verify with the signer key over body', { cause: err })
          throw new ValidationError('body', 'is not a signed sign-up payload', { cause: err })
        }
        payload = parseSignupPayload(decoded)
        if (toBase64Url(request.envelope.signer) !== payload.peerId)
          throw new ValidationError('signer', 'must be the public key named by peerId')
        if (!(await ownerLinkValid(payload)))
          throw new ValidationError(
            'ownerSig',
            "does not verify with the owner key over this identity's consent",
          )
      } catch (err) {
        return refuse(err)
      }
      // Single use: the challenge is gone once read, whatever follows.
      const bits = await redis.getdel(challengeKey(payload.challenge))
      if (bits === null)
        return refuse(
          new ValidationError('challenge', 'is unknown, expired or already used; fetch a new one'),
        )
      const prefix = await powPrefix(payload.challenge, request.envelope.signer, payload.natsKey)
      if (!checkPow(prefix, request.pow, Number(bits)))
        return refuse(
          new ValidationError('pow', `does not give ${bits} leading zero bits for this challenge`),
        )
      const network = init.networks.networkOf(address)
      const recorded = await attributes.record(payload.peerId, payload.owner, network, now())
      if (!recorded.ok)
        return refuse(
          new ValidationError(
            'owner',
            `this identity is linked to the owner ${recorded.owner}; an identity's owner cannot change`,
          ),
        )
      const credentials = init.issuer.issue(payload.peerId, payload.natsKey)
      await init.onSignedUp?.(payload.peerId)
      counters.volunteersSignedUp++
      log.info('volunteer signed up', {
        peerId: payload.peerId,
        owner: recorded.owner,
        network,
        expiresAt: credentials.expiresAt,
      })
      return {
        v: 1,
        peerId: payload.peerId,
        jwt: credentials.jwt,
        expiresAt: credentials.expiresAt,
        owner: recorded.owner,
      }
    },
  }
}
