// A volunteer signs up with a coordinator (shared/volunteer-signup.ts): fetch a challenge, solve the
// proof of work bound to it and to this identity, sign, and receive a NATS user JWT for the nkey this
// volunteer generated. Runs in Node and in browsers (fetch, WebCrypto).
import {
  CohortError,
  ownerLink,
  parseSignupChallenge,
  parseSignupReply,
  powPrefix,
  seal,
  signupRequest,
  solvePow,
  type Identity,
  type SignupPayload,
  type SignupReply,
} from '../shared/index.js'

/** The coordinator refused the sign-up (or could not be asked); `retryAfterMs` when it said when to retry. */
export class SignupError extends CohortError {
  override name = 'SignupError'
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly retryAfterMs?: number,
    options: { cause?: unknown } = {},
  ) {
    super(message, options)
  }
}

export interface SignUpOptions {
  /** Base URL of a coordinator's HTTP API, e.g. http://127.0.0.1:8080. */
  coordinatorUrl: string
  identity: Identity
  /**
   * The owner key this identity is linked to (several machines of one volunteer): the coordinator
   * records it, and never gives two identities of one owner replicas of the same unit. Once linked,
   * an identity cannot be linked to another owner.
   */
  owner?: Identity
  /** The public half of the user nkey the credentials are for (the volunteer keeps the seed). */
  natsKey: string
  /** Each HTTP request's time limit. Default 15000 ms. */
  requestTimeoutMs?: number
  /** The proof of work's time limit. Default 10 minutes. */
  powTimeoutMs?: number
  signal?: AbortSignal
  fetch?: typeof fetch
  /** Told how long the proof of work took. */
  onPow?: (info: { bits: number; tried: number; ms: number }) => void
}

async function call(o: SignUpOptions, path: string, init: RequestInit): Promise<unknown> {
  const doFetch = o.fetch ?? fetch
  const timeoutMs = o.requestTimeoutMs ?? 15_000
  const signal =
    o.signal === undefined
      ? AbortSignal.timeout(timeoutMs)
      : AbortSignal.any([o.signal, AbortSignal.timeout(timeoutMs)])
  const url = new URL(path, o.coordinatorUrl.endsWith('/') ? o.coordinatorUrl : `${o.coordinatorUrl}/`)
  let response: Response
  try {
    response = await doFetch(url, { ...init, signal })
  } catch (err) {
    if (o.signal?.aborted === true) throw err
    const timedOut = (err as Error).name === 'TimeoutError'
    throw new SignupError(
      timedOut
        ? `the coordinator at ${o.coordinatorUrl} did not answer within ${timeoutMs} ms`
        : `cannot reach the coordinator at ${o.coordinatorUrl}`,
      undefined,
      undefined,
      { cause: err },
    )
  }
  const text = await response.text()
  let body: unknown
  try {
    body = text === '' ? undefined : (JSON.parse(text) as unknown)
  } catch {
    body = undefined
  }
  if (!response.ok) {
    const detail = (body as { detail?: unknown } | undefined)?.detail
    const retry = Number(response.headers.get('retry-after'))
    throw new SignupError(
      `sign-up refused (${response.status}): ${typeof detail === 'string' ? detail : text.slice(0, 200)}`,
      response.status,
      Number.isFinite(retry) && retry > 0 ? retry * 1000 : undefined,
    )
  }
  return body
}

/** Signs up `identity` for `natsKey` and returns the coordinator's answer. */
export async function signUp(o: SignUpOptions): Promise<SignupReply> {
  const challenge = parseSignupChallenge(await call(o, 'v1/volunteers/challenge', { method: 'GET' }))
  const prefix = await powPrefix(challenge.challenge, o.identity.publicKey, o.natsKey)
  const started = Date.now()
  const { nonce, tried } = await solvePow(prefix, challenge.bits, {
    timeoutMs: o.powTimeoutMs ?? 600_000,
    ...(o.signal === undefined ? {} : { signal: o.signal }),
  })
  o.onPow?.({ bits: challenge.bits, tried, ms: Date.now() - started })
  const payload: SignupPayload = {
    type: 'volunteer.signup',
    v: 1,
    peerId: o.identity.id,
    natsKey: o.natsKey,
    challenge: challenge.challenge,
    ...(o.owner === undefined ? {} : await ownerLink(o.owner, o.identity.id)),
  }
  const envelope = await seal('volunteer.signup', payload, o.identity)
  const reply = parseSignupReply(
    await call(o, 'v1/volunteers', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(signupRequest(envelope, nonce)),
    }),
  )
  if (reply.peerId !== o.identity.id)
    throw new SignupError(`the coordinator answered for ${reply.peerId}, not ${o.identity.id}`, undefined)
  return reply
}
