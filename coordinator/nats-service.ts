// Serving one request/reply subject in the coordinators' queue group: decode, bound the number in
// flight, turn refusals into error replies, count malformed input, never throw out of a callback.
import type { Msg, NatsConnection, Subscription } from '@nats-io/nats-core'
import {
  COORDINATOR_QUEUE,
  decode,
  encode,
  errorFields,
  LimitError,
  ProtocolError,
  SignatureError,
  ValidationError,
  type ErrorReply,
  type Logger,
  type Subjects,
} from '../shared/index.js'
import type { Counters } from './counters.js'
import type { CoordinatorTuning } from './options.js'

export type Handler = (value: unknown) => Promise<unknown>

export interface ServiceInit {
  nats: NatsConnection
  subject: string
  handler: Handler
  counters: Counters
  log: Logger
  maxInflight: number
  maxBytes: number
}

export interface Service {
  /** Stop taking requests and wait (up to `timeoutMs`) for those in flight. */
  stop(timeoutMs: number): Promise<void>
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

  const reply = (msg: Msg, value: unknown): void => {
    if (msg.reply) msg.respond(encode(value))
  }

  const handle = async (msg: Msg): Promise<void> => {
    try {
      const value = decode(msg.data, init.maxBytes)
      reply(msg, await handler(value))
    } catch (err) {
      if (isRefusal(err)) {
        counters.malformed++
        log.warn('refused a malformed message', { subject, ...errorFields(err) })
        const code = err instanceof SignatureError ? 'bad-signature' : 'bad-request'
        reply(msg, { type: 'error', v: 1, code, message: (err as Error).message } satisfies ErrorReply)
      } else {
        log.error('request failed', { subject, ...errorFields(err) })
        reply(msg, { type: 'error', v: 1, code: 'internal', message: 'internal error' } satisfies ErrorReply)
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
        reply(msg, {
          type: 'error',
          v: 1,
          code: 'internal',
          message: 'coordinator busy',
        } satisfies ErrorReply)
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
