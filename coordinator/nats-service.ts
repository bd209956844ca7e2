// Serving one request/reply subject in the coordinators' queue group: decode, bound the number in
// flight, turn refusals into error replies, count malformed input, never throw out of a callback.
//
// Replies go only to the requester's own inbox. A handler opens the signed envelope through its
// context (`ctx.open`), which gives the service the verified signer; from then on a reply (data, an
// error) is sent only when the message's reply subject lies below that signer's inbox prefix
// (`_INBOX.<id>.`). A request pointing its reply anywhere else (a broadcast subject, another
// volunteer's inbox) is dropped at that point, before any work, with nothing sent: a refusal sent
// there would itself be the reflection. Before the signer is known (a message that does not decode
// or verify), only a short error goes out, and only to an inbox subject.
import type { Msg, NatsConnection, Subscription } from '@nats-io/nats-core'
import {
  COORDINATOR_QUEUE,
  decode,
  encode,
  errorFields,
  isOwnInbox,
  LimitError,
  open,
  ProtocolError,
  SignatureError,
  toBase64Url,
  ValidationError,
  type ErrorReply,
  type Logger,
  type SignedEnvelope,
  type Subjects,
} from '../shared/index.js'
import type { Counters } from './counters.js'
import type { CoordinatorTuning } from './options.js'

/** What a handler learns about the message it serves. */
export interface RequestContext {
  /**
   * Verify the envelope's signature and decode its body, as `open` does; then check that the reply
   * subject is the signer's own inbox. When it is not, the request ends here and nothing is sent.
   * A message without a reply subject is served, unanswered.
   * Call it first, before any work whose result goes into the reply.
   */
  open(envelope: SignedEnvelope): Promise<unknown>
  /** The verified signer (base64url id) once `open` has returned. */
  readonly signer: string | undefined
}

export type Handler = (value: unknown, ctx: RequestContext) => Promise<unknown>

export interface ServiceInit {
  nats: NatsConnection
  subject: string
  handler: Handler
  counters: Counters
  log: Logger
  maxInflight: number
  maxBytes: number
  /** Told the seconds from each request's arrival to its answer being sent (answered requests only). */
  timed?: Timer
}

/** Something that takes durations: a histogram of /metrics. */
export interface Timer {
  observe(seconds: number): void
}

export interface Service {
  /** Stop taking requests and wait (up to `timeoutMs`) for those in flight. */
  stop(timeoutMs: number): Promise<void>
}

/** A request whose reply subject is not its signer's own inbox: served with silence. */
class ForeignReplyError extends Error {
  override name = 'ForeignReplyError'
  constructor(readonly signer: string) {
    super('reply subject is not the signer’s own inbox')
  }
}

/**
 * A refusal that tells the requester when it may ask again (a budget that refills): answered with
 * the `over-budget` error code and `retryAfterMs`.
 */
export class RetryLaterError extends LimitError {
  override name = 'RetryLaterError'
  readonly retryAfterMs: number
  constructor(message: string, retryAfterMs: number) {
    super(message)
    this.retryAfterMs = retryAfterMs
  }
}

/**
 * A request of an identity caught with a wrong result (backtracking): answered with \`bad-request\`
 * and the reason, counted in \`bannedRefused\` (not as malformed).
 */
export class BannedError extends ProtocolError {
  override name = 'BannedError'
}

/** Longest error message sent back; errors carry no more than a short reason. */
const MAX_ERROR_MESSAGE = 300

/** An inbox of some connection: the only place an error for an unverified message may go. */
function isInbox(reply: string): boolean {
  return reply.startsWith('_INBOX.') && reply.length > 7 && !/[\s*>]/.test(reply)
}

function isRefusal(err: unknown): boolean {
  return (
    err instanceof ProtocolError ||
    err instanceof SignatureError ||
    err instanceof LimitError ||
    err instanceof ValidationError
  )
}

export function serve(init: ServiceInit): Service {
  const { nats, subject, handler, counters, log } = init
  const inflight = new Set<Promise<void>>()

  /** Whether a reply to `msg` may be sent, given the verified signer (undefined: none yet). */
  const mayReply = (msg: Msg, signer: string | undefined): boolean => {
    if (!msg.reply) return false
    return signer === undefined ? isInbox(msg.reply) : isOwnInbox(msg.reply, signer)
  }

  const refuseReply = (msg: Msg, signer: string | undefined): void => {
    counters.repliesRefused++
    log.debug('reply subject is not the requester’s own inbox; nothing sent', {
      subject,
      reply: msg.reply?.slice(0, 120),
      ...(signer === undefined ? {} : { worker: signer }),
    })
  }

  const answer = (msg: Msg, signer: string | undefined, value: unknown): void => {
    if (mayReply(msg, signer)) msg.respond(encode(value))
    else if (msg.reply) refuseReply(msg, signer)
  }

  const errorReply = (code: ErrorReply['code'], err: unknown, retryAfterMs?: number): ErrorReply => ({
    type: 'error',
    v: 1,
    code,
    message: String((err as Error).message).slice(0, MAX_ERROR_MESSAGE),
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  })

  const handle = async (msg: Msg): Promise<void> => {
    const arrived = performance.now()
    let signer: string | undefined
    const ctx: RequestContext = {
      async open(envelope) {
        const body = await open(envelope)
        const id = toBase64Url(envelope.signer)
        // A message without a reply subject (a parting release published by a closing tab) is still
        // served; it just gets no answer.
        if (msg.reply && !mayReply(msg, id)) throw new ForeignReplyError(id)
        signer = id
        return body
      },
      get signer() {
        return signer
      },
    }
    try {
      const value = decode(msg.data, init.maxBytes)
      const result = await handler(value, ctx)
      if (signer === undefined) {
        // A handler that never opened a signed envelope has no one to answer: refuse to guess.
        log.error('handler answered without verifying a signer; nothing sent', { subject })
        return
      }
      answer(msg, signer, result)
      init.timed?.observe((performance.now() - arrived) / 1000)
    } catch (err) {
      if (err instanceof ForeignReplyError) {
        refuseReply(msg, err.signer)
      } else if (err instanceof RetryLaterError) {
        counters.egressRefused++
        log.debug('request refused until later', { subject, worker: signer, retryAfterMs: err.retryAfterMs })
        answer(msg, signer, errorReply('over-budget', err, err.retryAfterMs))
      } else if (err instanceof BannedError) {
        counters.bannedRefused++
        log.debug('request of a caught identity refused', { subject, worker: signer })
        answer(msg, signer, errorReply('bad-request', err))
      } else if (isRefusal(err)) {
        counters.malformed++
        log.warn('refused a malformed message', { subject, ...errorFields(err) })
        answer(msg, signer, errorReply(err instanceof SignatureError ? 'bad-signature' : 'bad-request', err))
      } else {
        log.error('request failed', { subject, ...errorFields(err) })
        answer(msg, signer, errorReply('internal', new Error('internal error')))
      }
    }
  }

  const sub: Subscription = nats.subscribe(subject, {
    queue: COORDINATOR_QUEUE,
    callback: (err, msg) => {
      if (err) {
        log.warn('subscription error', { subject, ...errorFields(err) })
        return
      }
      if (inflight.size >= init.maxInflight) {
        counters.busy++
        answer(msg, undefined, errorReply('internal', new Error('coordinator busy')))
        return
      }
      const p = handle(msg).finally(() => inflight.delete(p))
      inflight.add(p)
    },
  })

  return {
    async stop(timeoutMs: number): Promise<void> {
      sub.unsubscribe()
      let timer: ReturnType<typeof setTimeout> | undefined
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs)
      })
      await Promise.race([Promise.allSettled([...inflight]).then(() => undefined), timeout])
      clearTimeout(timer)
    },
  }
}

/** What every coordinator service on NATS is built from. */
export interface ServiceComponents {
  nats: NatsConnection
  subjects: Subjects
  tuning: CoordinatorTuning
  counters: Counters
  log: Logger
}

export interface RequestServiceInit extends Omit<ServiceInit, 'maxInflight'> {
  tuning: Pick<CoordinatorTuning, 'maxInflight' | 'stopTimeoutMs'>
}

/** A service with the coordinator's lifecycle: serves its subject from `start()` until `stop()`. */
export interface RequestService {
  start(): void
  /** Stop taking requests; those in flight get the stop timeout to finish. */
  stop(): Promise<void>
}

export function requestService(init: RequestServiceInit): RequestService {
  let service: Service | undefined
  return {
    start() {
      service = serve({ ...init, maxInflight: init.tuning.maxInflight })
    },
    async stop() {
      await service?.stop(init.tuning.stopTimeoutMs)
      service = undefined
    },
  }
}
