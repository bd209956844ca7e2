// The durable job pipeline on BullMQ: `plan` splits a job into units (coordinator/planner), `assimilate` merges the
// validated outputs into the job's result. Both are idempotent, so BullMQ's retries and stalled-job
// recovery (a coordinator killed mid-step) are always safe. A sweep re-enqueues any step whose
// enqueue was lost between two writes, and merges itself a job whose merge step is done or stuck
// while the job is not.
import { Queue, Worker, type Job } from 'bullmq'
import type { Redis } from 'ioredis'
import { decode, errorFields, UnrecoverableError, type AnyJobType, type Logger } from '../shared/index.js'
import type { Counters } from './counters.js'
import type { CoordinatorTuning } from './options.js'
import { every, type Periodic } from './periodic.js'
import type { Planner } from './planner/planner.js'
import type { Store } from './store/store.js'
import { parseParams } from './schema/index.js'

export interface PipelineInit {
  /** A connection with `maxRetriesPerRequest: null`, as BullMQ requires. */
  connection: Redis
  store: Store
  /** Splits a job into its units (the same planner that sized them at submission). */
  planner: Pick<Planner, 'units'>
  tuning: CoordinatorTuning
  counters: Counters
  log: Logger
  jobTypes: ReadonlyMap<string, AnyJobType>
  /** Told how many replicas a batch of new units made ready. */
  onPlanned: (replicas: number) => void
}

export interface Pipeline {
  start(): void
  stop(): Promise<void>
  plan(jobId: string): Promise<void>
  assimilate(jobId: string): Promise<void>
  /** Re-enqueue unfinished steps of active jobs. */
  sweep(): Promise<void>
}

interface StepData {
  jobId: string
}

const UNIT_BATCH = 500
const STEP_OPTS = {
  attempts: 8,
  backoff: { type: 'exponential', delay: 500 },
  removeOnComplete: { age: 3600 },
  removeOnFail: { age: 24 * 3600 },
} as const

export function createPipeline(init: PipelineInit): Pipeline {
  const { store, log, tuning } = init
  const bullPrefix = `${tuning.redisPrefix}bull`
  const planQueue = new Queue<StepData>('plan', { connection: init.connection, prefix: bullPrefix })
  const assimilateQueue = new Queue<StepData>('assimilate', {
    connection: init.connection,
    prefix: bullPrefix,
  })
  const workers: Worker<StepData>[] = []
  let sweeper: Periodic | undefined

  const planStep = async (job: Job<StepData>): Promise<void> => {
    const rec = await store.getJob(job.data.jobId)
    if (rec === undefined || (rec.state !== 'queued' && rec.state !== 'running') || rec.planned) return
    const jobType = init.jobTypes.get(rec.kind)
    if (jobType === undefined) {
      await store.failJob(rec.id, `job type ${rec.kind} is not available on this coordinator`, Date.now())
      return
    }
    let inputs: unknown[]
    let unitMs: number
    try {
      // The stored params carry the unit size the planner chose at submission.
      ;({ inputs, unitMs } = await init.planner.units(jobType, parseParams(jobType, rec.params)))
    } catch (err) {
      await store.failJob(rec.id, `planning failed: ${(err as Error).message}`, Date.now())
      return
    }
    await store.setUnitsTotal(rec.id, inputs.length, unitMs)
    for (let i = 0; i < inputs.length; i += UNIT_BATCH) {
      const batch = inputs.slice(i, i + UNIT_BATCH).map((input, k) => ({ index: i + k, input }))
      const created = await store.addUnits(rec.id, rec.quorum, batch, Date.now())
      init.onPlanned(Number(created) * rec.quorum)
    }
    await store.markPlanned(rec.id, Date.now())
    log.info('job planned', { jobId: rec.id, units: inputs.length })
  }

  const assimilateStep = async (job: Pick<Job<StepData>, 'data'>): Promise<void> => {
    const rec = await store.getJob(job.data.jobId)
    if (rec === undefined || (rec.state !== 'queued' && rec.state !== 'running' && rec.state !== 'revising'))
      return
    if (!rec.planned || rec.unitsValidated !== rec.unitsTotal) return
    const jobType = init.jobTypes.get(rec.kind)
    if (jobType === undefined) throw new Error(`job type ${rec.kind} is not available`)
    const raw = await store.canonicalOutputs(rec.id, rec.unitsTotal)
    const outputs = raw.map((b, i) => {
      if (b === null) throw new Error(`unit ${i} of job ${rec.id} has no canonical output`)
      return jobType.parseOutput(decode(b)) as unknown
    })
    let result: unknown
    try {
      result = jobType.merge(parseParams(jobType, rec.params), outputs) as unknown
    } catch (err) {
      // A unit that settled on a failure (a wasm trap or time limit agreed by a quorum) fails the job.
      if (!(err instanceof UnrecoverableError)) throw err
      await store.failJob(rec.id, err.message, Date.now())
      init.counters.jobsFailed++
      log.warn('job failed', { jobId: rec.id, reason: err.message })
      return
    }
    // Refused when a unit was reopened since the outputs were read (backtracking): the merge runs
    // again once that unit is validated again.
    if (await store.completeJob(rec.id, result, rec.generation, Date.now())) {
      if (rec.state === 'revising') {
        init.counters.jobsRevised++
        log.info('job result revised', {
          jobId: rec.id,
          changed: JSON.stringify(result) !== JSON.stringify(rec.result),
        })
      } else {
        init.counters.jobsCompleted++
        log.info('job completed', { jobId: rec.id })
      }
    }
  }

  /** One merge per job and generation: a job revised after backtracking is merged again. */
  const enqueueAssimilate = async (jobId: string, generation: number): Promise<void> => {
    const id = generation === 0 ? `assimilate-${jobId}` : `assimilate-${jobId}-g${generation}`
    await assimilateQueue.add('assimilate', { jobId }, { ...STEP_OPTS, jobId: id })
  }

  const sweep = async (): Promise<void> => {
    // Finished jobs: their per-unit data expires after a while, the job and its result later.
    for (const id of await store.endedJobIds(100)) {
      await store.expireJobData(id, tuning.unitRetentionMs, tuning.jobRetentionMs, Date.now())
    }
    for (const id of await store.activeJobIds()) {
      const rec = await store.getJob(id)
      if (rec === undefined) continue
      if (!rec.planned && Date.now() - rec.createdAt > tuning.sweepIntervalMs) {
        await planQueue.add('plan', { jobId: id }, { ...STEP_OPTS, jobId: `plan-${id}` })
      } else if (rec.planned && rec.unitsValidated === rec.unitsTotal) {
        // Merged by its queued step, as a rule. A step whose record says done while the job's
        // completion was lost (a Redis failover between the two writes), or that no queue worker
        // picks up (a blocked connection that did not follow the failover), would leave the job
        // waiting for an hour; once the job has waited a whole sweep interval, the merge (idempotent:
        // completeJob checks the generation) runs here.
        if (Date.now() - rec.updatedAt > tuning.sweepIntervalMs) {
          log.info('merging a job whose merge step did not complete it', { jobId: id })
          await assimilateStep({ data: { jobId: id } })
        } else await enqueueAssimilate(id, rec.generation)
      }
    }
  }

  return {
    sweep,
    async plan(jobId) {
      await planQueue.add('plan', { jobId }, { ...STEP_OPTS, jobId: `plan-${jobId}` })
    },
    async assimilate(jobId) {
      const rec = await store.getJob(jobId)
      await enqueueAssimilate(jobId, rec?.generation ?? 0)
    },
    start() {
      const opts = { connection: init.connection, prefix: bullPrefix, concurrency: 2 }
      for (const [name, step] of [
        ['plan', planStep],
        ['assimilate', assimilateStep],
      ] as const) {
        const w = new Worker<StepData>(name, step, opts)
        w.on('failed', (job, err) =>
          log.warn(`${name} step failed`, { jobId: job?.data.jobId, ...errorFields(err) }),
        )
        w.on('error', (err) => log.warn(`${name} worker error`, errorFields(err)))
        workers.push(w)
      }
      sweeper = every(tuning.sweepIntervalMs, sweep, (err) => log.warn('sweep failed', errorFields(err)))
    },
    async stop() {
      await sweeper?.stop()
      await Promise.all(workers.map((w) => w.close()))
      workers.length = 0
      await Promise.all([planQueue.close(), assimilateQueue.close()])
    },
  }
}
