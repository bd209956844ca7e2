// Backtracking (docs/security.md, "Backtracking"): when an identity is caught with a wrong result,
// every unit it ever returned a result for is validated again. One durable BullMQ job per caught
// identity (`backtrack-<id>`): its leases are taken back, then each unit of its reverse index
// (`worker:{id}:units`) has the identity's results discarded and, if they backed the unit, is
// decided again by the validator's rule; a completed job with such units is revised. Every step is
// idempotent, so a retried or stalled job (a coordinator killed mid-way), or the sweep re-enqueueing
// a caught identity whose enqueue was lost, leaves the same state as one clean run.
import { Queue, Worker, type Job } from 'bullmq'
import type { Redis } from 'ioredis'
import { errorFields, type Logger } from '../shared/index.js'
import type { Counters } from './counters.js'
import type { CoordinatorTuning } from './options.js'
import { every, type Periodic } from './periodic.js'
import type { Store } from './store/store.js'

export interface BacktrackerInit {
  /** A connection with `maxRetriesPerRequest: null`, as BullMQ requires. */
  connection: Redis
  store: Store
  tuning: CoordinatorTuning
  counters: Counters
  log: Logger
  /** Decide a unit again after some of its results were discarded (the validator's). */
  reevaluate: (unitId: string) => Promise<boolean>
  /** Told how many replicas the revoked leases made ready again. */
  onReissue: (replicas: number) => void
}

export interface Backtracker {
  start(): void
  stop(): Promise<void>
  /**
   * The entry point of backtracking: `worker` was caught with a wrong result (`reason` says how).
   * It is banned at once, and every unit it returned a result for is validated again, durably.
   * Idempotent: calling it again for the same identity, from any coordinator, changes nothing.
   */
  backtrack(worker: string, reason: string): Promise<void>
  /** Enqueue backtracking of every caught identity not yet done (after a crash between two writes). */
  sweep(): Promise<void>
}

interface StepData {
  worker: string
}

/** Units of the reverse index taken per round. */
const BATCH = 100
const STEP_OPTS = {
  attempts: 20,
  backoff: { type: 'exponential', delay: 500 },
  removeOnComplete: { age: 3600 },
  removeOnFail: { age: 24 * 3600 },
} as const
/** A coordinator killed mid-step loses its lock this soon, and another one takes the step over. */
const LOCK_MS = 10_000

const stepId = (worker: string): string => `backtrack-${worker}`

export function createBacktracker(init: BacktrackerInit): Backtracker {
  const { store, log, tuning, counters } = init
  const prefix = `${tuning.redisPrefix}bull`
  const queue = new Queue<StepData>('backtrack', { connection: init.connection, prefix })
  let worker: Worker<StepData> | undefined
  let sweeper: Periodic | undefined

  const enqueue = async (id: string): Promise<void> => {
    const existing = await queue.getJob(stepId(id))
    // A step that gave up (Redis down for long) is tried again while the identity is still due.
    if (existing !== undefined && (await existing.isFailed())) await existing.retry()
    else await queue.add('backtrack', { worker: id }, { ...STEP_OPTS, jobId: stepId(id) })
  }

  const step = async (job: Job<StepData>): Promise<void> => {
    const id = job.data.worker
    const caught = await store.caught(id)
    if (caught === undefined || !(await store.isDue(id))) return
    const reason = `worker ${id} caught: ${caught.reason}`
    const revoked = await store.revokeLeases(id, Date.now())
    if (revoked > 0) init.onReissue(revoked)
    const held = new Set<string>()
    let units = 0
    let reopened = 0
    let expired = 0
    for (;;) {
      const batch = await store.workerUnits(id, BATCH)
      if (batch.length === 0) break
      for (const unitId of batch) {
        const r = await store.backtrackUnit(unitId, id, reason, Date.now())
        units++
        counters.resultsDiscarded += r.discarded
        if (r.unitState === 'expired') expired++
        if (r.reopened) {
          reopened++
          counters.unitsReopened++
        }
        // A job under revision keeps all its data until it is merged again (also on a re-run,
        // in case a coordinator died between reopening its unit and this).
        if (r.jobState === 'revising' && !held.has(r.jobId)) {
          held.add(r.jobId)
          const missing = await store.holdJobData(r.jobId)
          if (missing > 0) {
            await store.failJob(
              r.jobId,
              `result revision impossible: ${reason}, and the data of ${missing} units has expired`,
              Date.now(),
            )
            log.warn('job cannot be revised: unit data expired', { jobId: r.jobId, missing })
          }
        }
        // The unit is decided again by the same rule: accepted if the remaining results still make
        // a quorum, else replicas are issued (never to the caught identity, which is in its worker set).
        if (r.unitState === 'pending' && !(await init.reevaluate(unitId))) {
          throw new Error(`unit ${unitId}: job type not available on this coordinator`)
        }
        await store.forgetWorkerUnit(id, unitId)
      }
      await job.updateProgress(units).catch(() => undefined)
    }
    if (await store.finishBacktrack(id, Date.now())) {
      log.warn('worker backtracked', { worker: id, units, reopened, expired, revoked })
    }
  }

  const sweep = async (): Promise<void> => {
    for (const id of await store.backtracksDue(1000)) await enqueue(id)
  }

  return {
    sweep,
    async backtrack(id, reason) {
      await store.markCaught(id, reason, Date.now())
      await enqueue(id)
    },
    start() {
      worker = new Worker<StepData>('backtrack', step, {
        connection: init.connection,
        prefix,
        concurrency: 2,
        lockDuration: LOCK_MS,
        stalledInterval: LOCK_MS / 2,
      })
      worker.on('failed', (job, err) =>
        log.warn('backtrack step failed', { worker: job?.data.worker, ...errorFields(err) }),
      )
      worker.on('error', (err) => log.warn('backtrack worker error', errorFields(err)))
      sweeper = every(tuning.sweepIntervalMs, sweep, (err) =>
        log.warn('backtrack sweep failed', errorFields(err)),
      )
    },
    async stop() {
      await sweeper?.stop()
      await worker?.close()
      worker = undefined
      await queue.close()
    },
  }
}
