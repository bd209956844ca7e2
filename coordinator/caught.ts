// The caught event, and the contract of the backtrack request it raises.
//
// An identity is caught when its result disagrees with a unit's accepted result (among them a failed
// spot check). That is decided in one place, the Lua `markCaught` (store/trust-scripts.ts), inside
// the same atomic step that accepts the unit (DECIDE), or through `store.markCaught`. It:
//   1. sets `caught`, `caughtAt`, `caughtReason` on `worker:{id}`: the identity's credibility is
//      zero from then on, it gets no more units, and its results count for nothing in any group;
//   2. adds it to `caught` (the register) and to `backtrack:pending` (the outbox), atomically.
// This module turns the outbox into BullMQ jobs: queue `backtrack` (prefix `<redisPrefix>bull`),
// job name `backtrack`, job id `backtrack-<worker id>` (one per identity, so repeats are no-ops),
// data `BacktrackRequest`. It enqueues at once when a validator reports a catch, and again on every
// sweep for each identity still in the outbox, so a coordinator killed between the two steps loses
// nothing. The consumer of the queue re-validates everything the identity touched and then calls
// `store.backtrackDone(workerId)`, which takes it out of the outbox; it must be idempotent, since
// a request can be delivered again until then.
import { Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import { errorFields, type Logger } from '../shared/index.js'
import type { Counters } from './counters.js'
import type { Store } from './store/store.js'

/** The BullMQ queue of backtrack requests. */
export const BACKTRACK_QUEUE = 'backtrack'

/** What a backtrack request carries. */
export interface BacktrackRequest {
  v: 1
  /** The caught identity (peer id). */
  workerId: string
  /** Why it was caught, e.g. `failed a spot check: its result for unit j:3 disagreed with the accepted one`. */
  reason: string
  /** When it was caught (ms since the epoch). */
  caughtAt: number
}

/** The job id of an identity's backtrack request: one per identity. */
export function backtrackJobId(workerId: string): string {
  return `backtrack-${workerId}`
}

export interface CaughtEventsInit {
  /** A connection with `maxRetriesPerRequest: null`, as BullMQ requires. */
  connection: Redis
  redisPrefix: string
  store: Store
  counters: Counters
  log: Logger
  /** How often the outbox is swept. */
  sweepIntervalMs: number
}

export interface CaughtEvents {
  start(): void
  stop(): Promise<void>
  /** Identities a decision just caught: log, count and enqueue their backtrack requests. */
  caught(workerIds: string[]): Promise<void>
  /** Enqueue a request for every identity still in the outbox. */
  sweep(): Promise<void>
}

const STEP_OPTS = {
  attempts: 8,
  backoff: { type: 'exponential', delay: 500 },
  removeOnComplete: { age: 3600 },
  removeOnFail: { age: 24 * 3600 },
} as const

export function createCaughtEvents(init: CaughtEventsInit): CaughtEvents {
  const { store, log } = init
  const queue = new Queue<BacktrackRequest>(BACKTRACK_QUEUE, {
    connection: init.connection,
    prefix: `${init.redisPrefix}bull`,
  })
  let timer: ReturnType<typeof setInterval> | undefined
  let sweeping: Promise<void> | undefined

  const enqueue = async (workerId: string, caughtAt?: number): Promise<void> => {
    const stats = await store.workerStats(workerId)
    const req: BacktrackRequest = {
      v: 1,
      workerId,
      reason: stats.caught?.reason ?? 'caught',
      caughtAt: stats.caught?.at ?? caughtAt ?? Date.now(),
    }
    await queue.add('backtrack', req, { ...STEP_OPTS, jobId: backtrackJobId(workerId) })
  }

  const sweep = async (): Promise<void> => {
    for (const { workerId, caughtAt } of await store.backtrackPending(500)) await enqueue(workerId, caughtAt)
  }

  return {
    sweep,
    async caught(workerIds) {
      for (const id of workerIds) {
        init.counters.identitiesCaught++
        log.warn('identity caught: credibility zero, backtrack requested', {
          worker: id,
          reason: (await store.workerStats(id)).caught?.reason,
        })
        // The outbox holds it: a failed enqueue is repeated by the next sweep.
        await enqueue(id).catch((err: unknown) => log.warn('backtrack enqueue failed', errorFields(err)))
      }
    },
    start() {
      timer = setInterval(() => {
        if (sweeping !== undefined) return
        sweeping = sweep()
          .catch((err: unknown) => log.warn('caught outbox sweep failed', errorFields(err)))
          .finally(() => {
            sweeping = undefined
          })
      }, init.sweepIntervalMs)
    },
    async stop() {
      clearInterval(timer)
      await sweeping
      await queue.close()
    },
  }
}
