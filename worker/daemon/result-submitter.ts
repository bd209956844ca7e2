// Sends computed results to the coordinators. Results wait in one queue; while a send is in flight,
// later results queue and leave together in the next one, as one `result.batch` under one signature
// (`sendBatches`). A result whose send failed for a reason
// that may pass (a timeout, no coordinator) is queued again after a backoff, until its lease has long
// passed; a refusal is final. No `node:` imports.
import { errorFields, LIMITS, type Logger, type ResultAck, type UnitPayload } from '../../shared/index.js'
import { RequestRefusedError, type CoordinatorClient, type ResultFields } from '../coordinator-client.js'
import type { RunOutcome } from '../run-unit.js'

/** One result's answer from a send: the coordinator's ack, or why there is none. */
export type SendOutcome = ResultAck | Error

/** Sends a batch; answers in the batch's order. A rejection counts as that error for every result. */
export type SendResults = (batch: readonly ResultFields[]) => Promise<SendOutcome[]>

/**
 * The batch as `result.batch` requests: as many results as one may carry (LIMITS.maxBatchResults,
 * LIMITS.maxBatchOutputBytes of outputs; a larger result alone), the requests sent at once.
 */
export function sendBatches(client: Pick<CoordinatorClient, 'submitResults'>): SendResults {
  return async (batch) => {
    const groups: ResultFields[][] = []
    let bytes = Number.POSITIVE_INFINITY
    for (const r of batch) {
      const last = groups.at(-1)
      if (
        last === undefined ||
        last.length >= LIMITS.maxBatchResults ||
        bytes + r.output.length > LIMITS.maxBatchOutputBytes
      ) {
        groups.push([r])
        bytes = r.output.length
      } else {
        last.push(r)
        bytes += r.output.length
      }
    }
    const answers = await Promise.all(
      groups.map((g) => client.submitResults(g).catch((err: unknown) => g.map(() => asError(err)))),
    )
    return answers.flat()
  }
}

/** The counts this part keeps in the daemon's stats. */
export interface ResultStats {
  resultsAccepted: number
  resultsDuplicate: number
  resultsRejected: number
}

/** What the submitter needs of a held unit: which unit, and how long its lease makes a result worth sending. */
export interface Submittable {
  readonly unit: UnitPayload
  /** Read at each retry: renewals move it. */
  readonly expiresAt: number
  readonly leaseMs: number
}

export interface ResultSubmitterInit {
  send: SendResults
  stats: ResultStats
  log: Logger
  /** The coordinator answered a result (the daemon's `result` event). */
  onAck(unitId: string, ack: ResultAck): void
  /** Results per send at most. Default 64. */
  maxBatch?: number
  /** Wait before the `attempt`-th retry (from 0). Default 200 ms doubling, at most 5000 ms. */
  retryDelayMs?: (attempt: number) => number
  /** Clock for the give-up deadline. Default `Date.now`. */
  now?: () => number
}

export interface ResultSubmitter {
  /**
   * Queues a result. Resolves with the coordinator's ack; undefined when the result was refused, its
   * lease had long passed before any coordinator answered, or the submitter was closed.
   */
  submit(held: Submittable, outcome: RunOutcome): Promise<ResultAck | undefined>
  /** Results queued, in flight or waiting to retry. */
  readonly pending: number
  /** Stops retrying: results not in flight resolve undefined now, those in flight when answered. */
  close(): void
}

interface Entry {
  held: Submittable
  fields: ResultFields
  attempt: number
  resolve: (ack: ResultAck | undefined) => void
}

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)))

export const defaultRetryDelayMs = (attempt: number): number =>
  Math.min(5_000, 200 * 2 ** Math.min(attempt, 5))

export function createResultSubmitter(init: ResultSubmitterInit): ResultSubmitter {
  const { log, stats } = init
  const maxBatch = init.maxBatch ?? 64
  const retryDelayMs = init.retryDelayMs ?? defaultRetryDelayMs
  const now = init.now ?? Date.now
  const queue: Entry[] = []
  const retrying = new Map<ReturnType<typeof setTimeout>, Entry>()
  let inFlight = 0
  let closed = false

  const answered = (e: Entry, ack: ResultAck): void => {
    const { unitId } = e.held.unit
    if (ack.status === 'accepted') stats.resultsAccepted++
    else if (ack.status === 'duplicate') stats.resultsDuplicate++
    else {
      stats.resultsRejected++
      log.warn('result rejected', { unitId, reason: ack.reason })
    }
    e.resolve(ack)
    try {
      init.onAck(unitId, ack)
    } catch (err) {
      log.warn('a result listener failed', errorFields(err))
    }
  }

  const failed = (e: Entry, err: Error): void => {
    const { unitId } = e.held.unit
    // A refusal will not change on retry; a timeout or a missing coordinator might.
    if (err instanceof RequestRefusedError) {
      stats.resultsRejected++
      log.warn('result refused', { unitId, ...errorFields(err) })
      return e.resolve(undefined)
    }
    if (now() > e.held.expiresAt + e.held.leaseMs) {
      log.warn('giving up on a result: its lease has long passed', { unitId })
      return e.resolve(undefined)
    }
    if (closed) return e.resolve(undefined)
    log.debug('result submit failed; retrying', { unitId, attempt: e.attempt, ...errorFields(err) })
    const timer = setTimeout(() => {
      retrying.delete(timer)
      queue.push(e)
      flush()
    }, retryDelayMs(e.attempt++))
    retrying.set(timer, e)
  }

  /** One send at a time: what queues meanwhile goes in the next one. */
  function flush(): void {
    if (inFlight > 0 || queue.length === 0) return
    const batch = queue.splice(0, maxBatch)
    inFlight = batch.length
    void init
      .send(batch.map((e) => e.fields))
      .catch((err: unknown) => batch.map(() => asError(err)))
      .then((outcomes) => {
        inFlight = 0
        batch.forEach((e, i) => {
          const out = outcomes[i] ?? new Error('the send gave no answer for this result')
          if (out instanceof Error) failed(e, out)
          else answered(e, out)
        })
        flush()
      })
      .catch((err: unknown) => log.error('could not settle sent results', errorFields(err)))
  }

  return {
    submit(held, outcome) {
      const { unit } = held
      return new Promise<ResultAck | undefined>((resolve) => {
        if (closed) return resolve(undefined)
        queue.push({
          held,
          attempt: 0,
          resolve,
          fields: {
            replicaId: unit.replicaId,
            unitId: unit.unitId,
            jobId: unit.jobId,
            digest: outcome.digest,
            output: outcome.output,
            computeMs: outcome.computeMs,
          },
        })
        flush()
      })
    },
    get pending() {
      return queue.length + inFlight + retrying.size
    },
    close() {
      closed = true
      for (const [timer, e] of retrying) {
        clearTimeout(timer)
        e.resolve(undefined)
      }
      retrying.clear()
      for (const e of queue.splice(0)) e.resolve(undefined)
    },
  }
}
