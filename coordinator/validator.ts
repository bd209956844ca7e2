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
  parseResultBatch,
  parseResultPayload,
  sha256Hex,
  type AnyJobType,
  type Logger,
  type ResultAck,
  type ResultAcks,
  type ResultItem,
  type Subjects,
} from '../shared/index.js'
import type { Counters } from './counters.js'
import { serve, type RequestContext, type Service, type Timer } from './nats-service.js'
import type { CoordinatorTuning } from './options.js'
import type { DecideOutcome, ReplicaResult, ResultGroup, Store } from './store/store.js'

export interface ValidatorInit {
  nats: NatsConnection
  store: Store
  subjects: Subjects
  tuning: CoordinatorTuning
  counters: Counters
  log: Logger
  jobTypes: ReadonlyMap<string, AnyJobType>
  /** Told how many replicas were made ready again (reissued, a spot check). */
  onReissue: (replicas: number) => void
  /** Called when every unit of a job is validated. */
  onJobDone: (jobId: string) => Promise<void>
  /** Called when a worker is caught with a wrong result: it is backtracked. */
  onCaught: (worker: string, reason: string) => Promise<void>
  /**
   * Called with the units a batch of results (or a re-evaluation) validated: their results' compute
   * times feed the planner (speed-store.ts).
   */
  onValidated?: (unitIds: string[]) => Promise<void>
  /** Told the reason of each result refused (for /metrics' reasons). */
  onRejected?: (reason: string) => void
  /** Validation time: one signed message's results settled (checked, stored, decided). */
  settleTime?: Timer
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

/** Largest `result.batch` body: its outputs and, per result, room for its ids and digest. */
const MAX_BATCH_BYTES =
  Math.max(LIMITS.maxOutputBytes, LIMITS.maxBatchOutputBytes) + LIMITS.maxBatchResults * 512 + 4096

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v)

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
  const groupResults = async (
    unitId: string,
    results: ReplicaResult[],
    jobType: AnyJobType,
  ): Promise<Group[]> => {
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
    return groups
  }

  const caught = async (unitId: string, outcome: DecideOutcome): Promise<void> => {
    for (const worker of outcome.caught) {
      counters.identitiesCaught++
      const reason = `its result for unit ${unitId} disagreed with the accepted one`
      log.warn('identity caught with a wrong result: credibility zero, backtracking', { worker, unitId })
      await init.onCaught(worker, reason)
    }
  }

  /**
   * Decide units on their results: the results of all, then the verdicts of all, each in one round
   * trip. A unit whose results changed in between (`stale`) is read and decided again on its own.
   */
  const evaluateMany = async (units: { unitId: string; jobType: AnyJobType }[]): Promise<DecideOutcome[]> => {
    const results = await store.unitResultsMany(units.map((u) => u.unitId))
    const requests = await Promise.all(
      units.map(async ({ unitId, jobType }, i) => {
        const rs = results[i] ?? []
        return { unitId, nResults: rs.length, groups: await groupResults(unitId, rs, jobType), draw: draw() }
      }),
    )
    const outcomes = await store.decideMany(requests, Date.now())
    for (const [i, { unitId, jobType }] of units.entries()) {
      for (let attempt = 0; outcomes[i]!.verdict === 'stale' && attempt < MAX_STALE_RETRIES; attempt++) {
        const rs = await store.unitResults(unitId)
        const groups = await groupResults(unitId, rs, jobType)
        outcomes[i] = await store.decide(unitId, rs.length, groups, draw(), Date.now())
      }
      await caught(unitId, outcomes[i]!)
    }
    return outcomes
  }

  const evaluate = async (unitId: string, jobType: AnyJobType): Promise<DecideOutcome> =>
    (await evaluateMany([{ unitId, jobType }]))[0]!

  const afterDecision = async (jobId: string, unitId: string, outcome: DecideOutcome): Promise<void> => {
    if (outcome.note === 'solo' && outcome.verdict === 'validated') counters.unitsAcceptedAlone++
    if (outcome.note === 'check') {
      counters.spotChecks++
      init.onReissue(1)
    }
    switch (outcome.verdict) {
      case 'validated':
        counters.unitsValidated++
        break
      case 'reissued':
        counters.unitsReissued++
        log.info('results disagree; another replica issued', { unitId })
        init.onReissue(1)
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

  const check = async (r: ResultItem, jobType: AnyJobType): Promise<string | undefined> => {
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

  const rejected = (reason: string): ResultAck => {
    init.onRejected?.(reason)
    return { type: 'result.ack', v: 1, status: 'rejected', reason }
  }

  /**
   * Settle the results one worker signed: every check is made for each result on its own, and each
   * gets its own answer. Storing them, reading the results of their units and deciding those units
   * each take one Redis round trip for the whole batch.
   */
  const settle = async (worker: string, items: ResultItem[]): Promise<ResultAck[]> => {
    const began = performance.now()
    const acks: (ResultAck | undefined)[] = items.map(() => undefined)
    const good: { i: number; item: ResultItem; jobType: AnyJobType }[] = []
    const broken: string[] = []
    for (const [i, item] of items.entries()) {
      const jobType = await jobTypeOf(item.jobId)
      const problem = jobType === undefined ? 'unknown job' : await check(item, jobType)
      if (jobType !== undefined && problem === undefined) {
        good.push({ i, item, jobType })
        continue
      }
      counters.resultsRejected++
      acks[i] = rejected(problem ?? 'unknown job')
      if (jobType === undefined) continue
      // A broken result counts against the worker; its lease is taken back so the unit moves on.
      broken.push(item.replicaId)
      log.warn('result refused', { worker, replicaId: item.replicaId, reason: problem })
    }
    if (broken.length > 0) {
      await store.release(worker, broken, init.tuning.maxWorkersPerUnit, Date.now())
      init.onReissue(broken.length)
    }
    const stored = await store.submitMany(
      good.map(({ item }) => ({ ...item, worker })),
      Date.now(),
    )
    const toDecide = new Map<string, { jobId: string; jobType: AnyJobType }>()
    for (const [k, { i, item, jobType }] of good.entries()) {
      const { status, detail } = stored[k]!
      if (status === 'rejected') {
        counters.resultsRejected++
        if (detail.startsWith('this identity is banned')) counters.bannedRefused++
        acks[i] = rejected(detail)
        continue
      }
      if (status === 'duplicate') counters.resultsDuplicate++
      else counters.resultsAccepted++
      // Decide on duplicates too: a coordinator may have died between storing and deciding.
      if (detail === 'pending') toDecide.set(item.unitId, { jobId: item.jobId, jobType })
      acks[i] = { type: 'result.ack', v: 1, status }
    }
    const units = [...toDecide].map(([unitId, u]) => ({ unitId, ...u }))
    const outcomes = await evaluateMany(units)
    for (const [k, u] of units.entries()) await afterDecision(u.jobId, u.unitId, outcomes[k]!)
    const validated = units.filter((_, k) => outcomes[k]!.verdict === 'validated').map((u) => u.unitId)
    if (validated.length > 0) await init.onValidated?.(validated)
    init.settleTime?.observe((performance.now() - began) / 1000)
    return acks.map((a) => a!)
  }

  /** A `result` (one) or a `result.batch` (many under one signature) on the same subject. */
  const onResult = async (value: unknown, ctx: RequestContext): Promise<ResultAck | ResultAcks> => {
    if (isRecord(value) && value['kind'] === 'result.batch') {
      const env = parseEnvelope(value, 'result.batch', MAX_BATCH_BYTES)
      const batch = parseResultBatch(await ctx.open(env))
      checkWorkerSigned(batch, env.signer, Date.now())
      return { type: 'result.acks', v: 1, acks: await settle(batch.worker, batch.results) }
    }
    const env = parseEnvelope(value, 'result', LIMITS.maxOutputBytes + 4096)
    const r = parseResultPayload(await ctx.open(env))
    checkWorkerSigned(r, env.signer, Date.now())
    return (await settle(r.worker, [r]))[0]!
  }

  return {
    evaluate,
    async reevaluate(unitId) {
      const jobId = unitId.slice(0, unitId.lastIndexOf(':'))
      const jobType = await jobTypeOf(jobId)
      if (jobType === undefined) return false
      const outcome = await evaluate(unitId, jobType)
      await afterDecision(jobId, unitId, outcome)
      if (outcome.verdict === 'validated') await init.onValidated?.([unitId])
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
        maxBytes: MAX_BATCH_BYTES + 4096,
      })
    },
    async stop() {
      await service?.stop(init.tuning.stopTimeoutMs)
      service = undefined
    },
  }
}
