// The validator: takes signed results, checks them, and accepts a unit once a group of agreeing
// results from distinct workers is credible enough (docs/security.md, "Credibility and adaptive
// replication"). Otherwise it issues more replicas, up to the job's limit; then the unit fails.
// Identities whose results disagreed with an accepted one are caught, and backtracked (backtracker.ts).
import type { NatsConnection } from '@nats-io/nats-core'
import { randomInt } from 'node:crypto'
import {
  checkWorkerSigned,
  decode,
  LIMITS,
  parseEnvelope,
  parseResultPayload,
  sha256Hex,
  type AnyJobType,
  type Logger,
  type ResultAck,
  type ResultPayload,
  type Subjects,
} from '../shared/index.js'
import type { Counters } from './counters.js'
import { serve, type RequestContext, type Service } from './nats-service.js'
import type { CoordinatorTuning } from './options.js'
import type { DecideOutcome, ResultGroup, Store } from './store/store.js'

export interface ValidatorInit {
  nats: NatsConnection
  store: Store
  subjects: Subjects
  tuning: CoordinatorTuning
  counters: Counters
  log: Logger
  jobTypes: ReadonlyMap<string, AnyJobType>
  /** Called when a unit gets more replicas (workers should be told). */
  onReissue: () => void
  /** Called when every unit of a job is validated. */
  onJobDone: (jobId: string) => Promise<void>
  /** Called when a worker is caught with a wrong result: it is backtracked. */
  onCaught: (worker: string, reason: string) => Promise<void>
  /** Called when a unit is validated: its results' compute times feed the planner (speed-store.ts). */
  onValidated?: (unitId: string) => Promise<void>
}

export interface Validator {
  start(): void
  stop(): Promise<void>
  /** Evaluate a unit's results again (used after a restart and by tests). */
  evaluate(unitId: string, jobType: AnyJobType): Promise<DecideOutcome>
  /**
   * Decide a unit again and act on the verdict (reissue, job done, workers caught): after
   * backtracking discarded some of its results. False when its job type is unknown here.
   */
  reevaluate(unitId: string): Promise<boolean>
}

type Group = ResultGroup

/** A uniform random number in [0, 1) the workers cannot predict: the spot-check draw. */
const draw = (): number => randomInt(0, 2 ** 32) / 2 ** 32

const MAX_STALE_RETRIES = 8

export function createValidator(init: ValidatorInit): Validator {
  const { store, counters, log } = init
  let service: Service | undefined
  const kindCache = new Map<string, string>()

  const jobTypeOf = async (jobId: string): Promise<AnyJobType | undefined> => {
    let kind = kindCache.get(jobId)
    if (kind === undefined) {
      kind = (await store.jobKind(jobId)) ?? ''
      if (kindCache.size > 10_000) kindCache.clear()
      if (kind !== '') kindCache.set(jobId, kind)
    }
    return init.jobTypes.get(kind)
  }

  /** Group results that agree: by digest, or by the job type's own comparison. */
  const groupResults = async (unitId: string, jobType: AnyJobType) => {
    const results = await store.unitResults(unitId)
    const byDigest = new Map<string, string[]>()
    for (const r of results) byDigest.set(r.digest, [...(byDigest.get(r.digest) ?? []), r.replicaId])
    let groups: Group[] = [...byDigest].map(([digest, replicaIds]) => ({ digest, replicaIds }))
    const compare = jobType.compare
    if (compare !== undefined && groups.length > 1) {
      const digests = groups.map((g) => g.digest)
      const raw = await store.unitOutputs(unitId, digests)
      const outputs = raw.map((b) => (b === null ? undefined : (jobType.parseOutput(decode(b)) as unknown)))
      const merged: { rep: unknown; group: Group }[] = []
      groups.forEach((g, i) => {
        const out = outputs[i]
        const home = out === undefined ? undefined : merged.find((m) => compare(m.rep, out))
        if (home !== undefined) home.group.replicaIds.push(...g.replicaIds)
        else merged.push({ rep: out, group: { digest: g.digest, replicaIds: [...g.replicaIds] } })
      })
      groups = merged.map((m) => m.group)
    }
    groups.sort((a, b) => b.replicaIds.length - a.replicaIds.length || (a.digest < b.digest ? -1 : 1))
    return { n: results.length, groups }
  }

  const evaluate = async (unitId: string, jobType: AnyJobType): Promise<DecideOutcome> => {
    for (let attempt = 0; ; attempt++) {
      const { n, groups } = await groupResults(unitId, jobType)
      const outcome = await store.decide(unitId, n, groups, draw(), Date.now())
      if (outcome.verdict !== 'stale' || attempt >= MAX_STALE_RETRIES) {
        for (const worker of outcome.caught) {
          counters.identitiesCaught++
          const reason = `its result for unit ${unitId} disagreed with the accepted one`
          log.warn('identity caught with a wrong result: credibility zero, backtracking', { worker, unitId })
          await init.onCaught(worker, reason)
        }
        return outcome
      }
    }
  }

  const afterDecision = async (jobId: string, unitId: string, outcome: DecideOutcome): Promise<void> => {
    if (outcome.note === 'solo' && outcome.verdict === 'validated') counters.unitsAcceptedAlone++
    if (outcome.note === 'check') {
      counters.spotChecks++
      init.onReissue()
    }
    switch (outcome.verdict) {
      case 'validated':
        counters.unitsValidated++
        await init.onValidated?.(unitId)
        break
      case 'reissued':
        counters.unitsReissued++
        log.info('results disagree; another replica issued', { unitId })
        init.onReissue()
        break
      case 'failed':
        counters.unitsFailed++
        log.warn('unit failed: no credible quorum', { unitId, jobId })
        break
      default:
        break
    }
    if (outcome.total > 0 && outcome.validated === outcome.total) await init.onJobDone(jobId)
  }

  const check = async (r: ResultPayload, jobType: AnyJobType): Promise<string | undefined> => {
    if ((await sha256Hex(r.output)) !== r.digest) return 'digest does not match the output'
    if (!r.unitId.startsWith(`${r.jobId}:`) || !r.replicaId.startsWith(`${r.unitId}:`)) {
      return 'replica, unit and job ids do not belong together'
    }
    try {
      jobType.parseOutput(decode(r.output, LIMITS.maxOutputBytes))
    } catch (err) {
      return `malformed output: ${(err as Error).message}`
    }
    return undefined
  }

  const onResult = async (value: unknown, ctx: RequestContext): Promise<ResultAck> => {
    const env = parseEnvelope(value, 'result', LIMITS.maxOutputBytes + 4096)
    const r = parseResultPayload(await ctx.open(env))
    checkWorkerSigned(r, env.signer, Date.now())
    const jobType = await jobTypeOf(r.jobId)
    if (jobType === undefined) {
      counters.resultsRejected++
      return { type: 'result.ack', v: 1, status: 'rejected', reason: 'unknown job' }
    }
    const problem = await check(r, jobType)
    if (problem !== undefined) {
      // A broken result counts against the worker; its lease is taken back so the unit moves on.
      counters.resultsRejected++
      await store.release(r.worker, [r.replicaId], init.tuning.maxWorkersPerUnit, Date.now())
      init.onReissue()
      log.warn('result refused', { worker: r.worker, replicaId: r.replicaId, reason: problem })
      return { type: 'result.ack', v: 1, status: 'rejected', reason: problem }
    }
    const { status, detail } = await store.submit(r, Date.now())
    if (status === 'rejected') {
      counters.resultsRejected++
      if (detail.startsWith('this identity is banned')) counters.bannedRefused++
      return { type: 'result.ack', v: 1, status, reason: detail }
    }
    if (status === 'duplicate') counters.resultsDuplicate++
    else counters.resultsAccepted++
    // Evaluate on duplicates too: a coordinator may have died between storing and deciding.
    if (detail === 'pending') await afterDecision(r.jobId, r.unitId, await evaluate(r.unitId, jobType))
    return { type: 'result.ack', v: 1, status }
  }

  return {
    evaluate,
    async reevaluate(unitId) {
      const jobId = unitId.slice(0, unitId.lastIndexOf(':'))
      const jobType = await jobTypeOf(jobId)
      if (jobType === undefined) return false
      await afterDecision(jobId, unitId, await evaluate(unitId, jobType))
      return true
    },
    start() {
      service = serve({
        nats: init.nats,
        subject: init.subjects.resultSubmit,
        handler: onResult,
        counters,
        log,
        maxInflight: init.tuning.maxInflight,
        maxBytes: LIMITS.maxOutputBytes + 8192,
      })
    },
    async stop() {
      await service?.stop(init.tuning.stopTimeoutMs)
      service = undefined
    },
  }
}
