// The coordinator's only state: Redis. Jobs are hashes; units, replicas and leases change only
// through the atomic scripts in scripts.ts.
import type { Redis } from 'ioredis'
import { definePrefixed } from './define-script.js'
import { createReplicaWait } from './replica-wait.js'
import { randomInt } from 'node:crypto'
import * as scripts from './scripts.js'
import * as ownerScripts from './owner-scripts.js'
import * as backtrackScripts from './backtrack-scripts.js'
import * as trustScripts from './trust-scripts.js'
import * as eventScripts from './event-scripts.js'
import type { PlanView } from '../planner/choose-plan.js'
import { JOB_STATES } from '../../shared/index.js'

/** `revising`: a completed job whose result is being recomputed after backtracking (still readable). */
export type JobState = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled' | 'revising'

/** One revision of a job's result: a caught identity had backed `units` of its units. */
export interface Revision {
  /** When the identity was found to have backed this job's units (ms since the epoch). */
  at: number
  reason: string
  /** Units validated again. */
  units: number
  /** When the revised result was merged; absent while the revision is under way. */
  revisedAt?: number
  /** Whether the revised result differs from the one before; absent while under way. */
  changed?: boolean
}

export interface NewJob {
  id: string
  type: string
  version: number
  params: unknown
  quorum: number
  maxReplicas: number
  /** Credibility a unit's accepted result must reach (docs/security.md). */
  minCredibility: number
  /** Chance that a result accepted alone (adaptive replication) is checked by other replicas. */
  spotCheckRate: number
  priority: number
  owner: string
  /** The planner's choice (absent on jobs planned before there was one). */
  plan?: PlanView
}

export interface JobRecord extends NewJob {
  kind: string
  state: JobState
  createdAt: number
  updatedAt: number
  unitsTotal: number
  unitsValidated: number
  unitsFailed: number
  replicasExtra: number
  planned: boolean
  /** Bumped each time a validated unit is reopened: a merge of older outputs is refused. */
  generation: number
  /** Revisions of the result, finished ones first, then those under way. */
  revisions: Revision[]
  error?: string
  result?: unknown
}

export interface LeasedReplica {
  replicaId: string
  unitId: string
  jobId: string
  kind: string
  input: unknown
  deadline: number
}

export interface ReplicaResult {
  replicaId: string
  digest: string
  worker: string
}

export type SubmitStatus = 'accepted' | 'duplicate' | 'rejected'
export type Verdict = 'validated' | 'failed' | 'reissued' | 'waiting' | 'settled' | 'stale' | 'unknown'

export interface DecideOutcome {
  verdict: Verdict
  validated: number
  failed: number
  total: number
  /** Identities caught by this decision (their result disagreed with the accepted one). */
  caught: string[]
  /** `solo`: accepted alone (adaptive replication); `check`: a lone result drawn for a spot check. */
  note: '' | 'solo' | 'check'
}

/** A group of agreeing results: a digest (the canonical one if accepted) and its replicas. */
export interface ResultGroup {
  digest: string
  replicaIds: string[]
}

/** The deployment's trust parameters (docs/security.md, "Credibility and adaptive replication"). */
export interface TrustParams {
  /** Assumed fraction of saboteurs among identities, f. */
  saboteurFraction: number
  /** Credibility of a vouched (operator's own) host that has not earned more. */
  vouchedCredibility: number
  /** Credibility an identity needs to anchor a group of agreeing results. */
  anchorCredibility: number
  /** Agreeing identities that may validate a unit without an anchor (0: never). */
  unanchoredGroup: number
  /** Default minimum credibility of jobs that do not set one. */
  minCredibility: number
  /** Default spot-check rate of jobs that do not set one. */
  spotCheckRate: number
}

export interface WorkerStats {
  results: number
  valid: number
  invalid: number
  /** Credit: the job type's estimated compute time of each unit this worker helped validate. */
  creditMs: number
  /** What the worker claimed for those units (information only; each bounded by its lease's age). */
  claimedMs: number
  /** Leases it handed back or lost in transit while its unit still needed them. */
  released: number
  /** Leases that expired in its hands (or were renewed past their lifetime). */
  expired: number
  /** Checked results: agreements the rest of their group vouched for, and spot checks passed. */
  passed: number
  /** Spot checks passed (its lone result checked by other replicas, and agreed). */
  spotPassed: number
  /** Whether the operator vouched for this identity (its own host). */
  vouched: boolean
  /** When it was caught (ms), and why; absent while it never was. */
  caught?: { at: number; reason: string }
}

/** The lease rules a work request is served by (the coordinator's tuning has them all). */
export interface LeaseRules {
  leaseMs: number
  leaseScan: number
  workRequestBurst: number
  workRequestsPerSecond: number
  leaseCapBase: number
  leaseCapPerValidated: number
  leaseCapMax: number
  leaseLifetimeFloorMs: number
  leaseLifetimeFactor: number
  maxWorkersPerUnit: number
  reissueHoldMs: number
  letGoGraceMs: number
  /** A unit's next replica is leased at least half this long, at most this long, after the last. */
  replicaSpreadMs: number
  /** The longest wait an empty grant asks for: idle:{worker} is kept three times as long. */
  idleRetryMaxMs: number
}

/** What one work request got. */
export interface WorkOutcome {
  /** `rate`: out of work requests for now; `leases`: fewer units than asked, at the lease cap. */
  status: 'ok' | 'rate' | 'leases' | 'banned' | 'replayed'
  /**
   * For `rate`: when the next request may be served. Otherwise, when nothing was leased, the ms until
   * a replica this worker may take comes out of its spread (0: none is waiting).
   */
  retryAfterMs: number
  /** Leases the worker may hold at once now. */
  cap: number
  /** Leases it holds after this request. */
  holding: number
  /** Leases taken back because the worker no longer listed them (grants lost in transit). */
  reclaimed: number
  leased: LeasedReplica[]
  /** Empty grants in a row this worker got while it had room, this one included (0: it got units). */
  idle: number
}

type Reply = string | number | null | Reply[]

interface ScriptedRedis extends Redis {
  cohortAddUnits(...args: (string | number)[]): Promise<number>
  cohortWork(
    ...args: (string | number)[]
  ): Promise<[string, number, number, number, number, string[][], number]>
  cohortRenew(...args: (string | number)[]): Promise<[string[], number]>
  cohortRelease(...args: (string | number)[]): Promise<number>
  cohortTransfer(...args: (string | number)[]): Promise<[string[][], string[], number]>
  cohortExpire(...args: (string | number)[]): Promise<number>
  cohortSubmit(...args: (string | number | Uint8Array)[]): Promise<string[]>
  cohortDecide(...args: (string | number)[]): Promise<Reply[]>
  cohortCredibility(...args: (string | number)[]): Promise<[string, string]>
  cohortVouch(...args: (string | number)[]): Promise<number>
  cohortTrustParams(...args: (string | number)[]): Promise<string>
  cohortCancel(...args: (string | number)[]): Promise<string | null>
  cohortComplete(...args: (string | number)[]): Promise<number>
  cohortCreateJob(...args: (string | number)[]): Promise<number>
  cohortReleaseUnits(...args: (string | number)[]): Promise<number>
  cohortTakeToken(...args: (string | number)[]): Promise<number>
  cohortCatch(...args: (string | number)[]): Promise<number>
  cohortRevokeLeases(...args: (string | number)[]): Promise<number>
  cohortBacktrackUnit(...args: (string | number)[]): Promise<[string, string, string, number, number]>
  cohortFinishBacktrack(...args: (string | number)[]): Promise<number>
  cohortSetUnitsTotal(...args: (string | number)[]): Promise<number>
  cohortFailJob(...args: (string | number)[]): Promise<number>
}

/** Inputs of one grant's units at most (it always holds one): a grant stays well within a NATS message. */
const GRANT_INPUT_BYTES = 2 * 1024 * 1024

/**
 * A pipeline of plain commands (a batch's result reads): one round trip. Scripts are not sent in
 * pipelines: ioredis sends a script's whole text (EVAL) in every pipeline, where a call on the
 * connection sends it once and then only its SHA (EVALSHA). A batch's script calls are sent together
 * on the connection instead (`Promise.all`), which overlaps their round trips just the same.
 */
interface ReadPipeline {
  hgetall(key: string): ReadPipeline
  exec(): Promise<[Error | null, unknown][] | null>
}

/** The replies of a pipeline, in order; the first failed command's error is thrown. */
async function replies<T>(pipe: ReadPipeline): Promise<T[]> {
  const out = (await pipe.exec()) ?? []
  return out.map(([err, value]) => {
    if (err !== null) throw err
    return value as T
  })
}

/** A result for SUBMIT: the replica, the worker that signed it, and what it computed. */
export interface SubmittedResult {
  replicaId: string
  worker: string
  unitId: string
  digest: string
  output: Uint8Array
  computeMs: number
}

/** One unit to DECIDE: its groups of agreeing results over `nResults` results, and its draw. */
export interface DecideRequest {
  unitId: string
  nResults: number
  groups: ResultGroup[]
  /** Uniform in [0, 1): the spot-check draw. */
  draw: number
}

/** What validating one unit of a caught identity again did (see BACKTRACK_UNIT). */
export interface BacktrackUnitOutcome {
  /** The unit's state now; `expired` when its data is gone. */
  unitState: string
  jobId: string
  jobState: string
  /** The identity's results discarded now. */
  discarded: number
  /** Whether a validated unit was reopened. */
  reopened: boolean
}

/** A caught identity: when and why. */
export interface Caught {
  at: number
  reason: string
  /** When its backtracking finished (undefined while due). */
  backtrackedAt?: number
}

/** How a job is admitted: `units` counted in flight for its owner, refused past `limit` (null: none). */
export interface Admission {
  units: number
  limit: number | null
}

export type CreateOutcome = { created: true } | { created: false; inFlight: number }

export interface StoreInit {
  redis: Redis
  /** Key prefix, e.g. `cohort:`; lets several deployments share one Redis. */
  prefix: string
  /**
   * Replicas that must have a result's acceptance and a job's completion before they are reported
   * (Redis WAIT, bounded by `waitTimeoutMs`); 0 (the default): no WAIT. See replica-wait.ts.
   */
  waitReplicas?: number
  waitTimeoutMs?: number
  /** Told when a WAIT ended with fewer replicas than asked. */
  onWaitShort?: (acked: number, wanted: number) => void
}

export type Store = ReturnType<typeof createStore>

const STATES: ReadonlySet<string> = JOB_STATES
const ACTIVE: ReadonlySet<string> = new Set(['queued', 'running', 'revising'])

/** Revisions: the finished ones (JSON in the job) and those under way (`job:{id}:revising`). */
function revisionsOf(finished: string | undefined, open: Record<string, string>): Revision[] {
  const out = JSON.parse(finished ?? '[]') as Revision[]
  const by = new Map<string, Record<string, string>>()
  for (const [k, v] of Object.entries(open)) {
    const i = k.lastIndexOf('|')
    const w = k.slice(0, i)
    by.set(w, { ...by.get(w), [k.slice(i + 1)]: v })
  }
  const under = [...by.values()].map((e) => ({
    at: num(e['at']),
    reason: e['reason'] ?? '',
    units: num(e['units']),
  }))
  return [...out, ...under.sort((a, b) => a.at - b.at)]
}

function num(v: string | undefined): number {
  return v === undefined ? 0 : Number(v)
}

/** A replica row of LEASE or TRANSFER: {rid, uid, jid, kind, input, deadline}. */
function leasedRow(r: string[]): LeasedReplica {
  return {
    replicaId: r[0] as string,
    unitId: r[1] as string,
    jobId: r[2] as string,
    kind: r[3] as string,
    input: JSON.parse(r[4] as string) as unknown,
    deadline: Number(r[5]),
  }
}

/** What a claimed transfer did: the leases now held by the claimant, and the replicas refused. */
export interface TransferOutcome {
  moved: LeasedReplica[]
  refused: string[]
  /** Refused replicas that went back to the queue (the claimant holds another replica of the unit). */
  givenBack: number
}

export function createStore(init: StoreInit) {
  const p = init.prefix
  const redis = init.redis as ScriptedRedis
  const define = (name: string, lua: string): void => {
    definePrefixed(redis, name, lua)
  }
  define('cohortAddUnits', scripts.ADD_UNITS)
  define('cohortWork', scripts.WORK)
  define('cohortRenew', scripts.RENEW)
  define('cohortRelease', scripts.RELEASE)
  define('cohortTransfer', scripts.TRANSFER)
  define('cohortExpire', scripts.EXPIRE)
  define('cohortSubmit', scripts.SUBMIT)
  define('cohortDecide', scripts.DECIDE)
  define('cohortCredibility', scripts.CREDIBILITY)
  define('cohortVouch', trustScripts.VOUCH)
  define('cohortTrustParams', trustScripts.SET_TRUST_PARAMS)
  define('cohortCancel', scripts.CANCEL)
  define('cohortComplete', scripts.COMPLETE)
  define('cohortCreateJob', ownerScripts.CREATE_JOB)
  define('cohortReleaseUnits', ownerScripts.RELEASE_UNITS)
  define('cohortTakeToken', ownerScripts.TAKE_TOKEN)
  define('cohortCatch', backtrackScripts.CATCH)
  define('cohortRevokeLeases', backtrackScripts.REVOKE_LEASES)
  define('cohortBacktrackUnit', backtrackScripts.BACKTRACK_UNIT)
  define('cohortFinishBacktrack', backtrackScripts.FINISH_BACKTRACK)
  define('cohortSetUnitsTotal', eventScripts.SET_UNITS_TOTAL)
  define('cohortFailJob', eventScripts.FAIL_JOB)

  const jobKey = (id: string): string => `${p}job:${id}`
  const replicated = createReplicaWait({
    redis,
    prefix: p,
    replicas: init.waitReplicas ?? 0,
    timeoutMs: init.waitTimeoutMs ?? 1000,
    ...(init.onWaitShort === undefined ? {} : { onShort: init.onWaitShort }),
  })

  /**
   * Give every key of a job's units and replicas an expiry of `ttlMs`, or none (undefined). Returns
   * how many units had no data left.
   */
  const unitKeys = async (jobId: string, ttlMs: number | undefined): Promise<number> => {
    const total = Number((await redis.hget(jobKey(jobId), 'unitsTotal')) ?? 0)
    const batch = 500
    let missing = 0
    for (let i = 0; i < total; i += batch) {
      const ids = Array.from({ length: Math.min(batch, total - i) }, (_, k) => `${jobId}:${i + k}`)
      const seqs = await Promise.all(ids.map((u) => redis.hget(`${p}unit:${u}`, 'replicaSeq')))
      const pipe = redis.pipeline()
      ids.forEach((u, k) => {
        if (seqs[k] === null) missing++
        const keys = [':workers', ':dropped', ':results', ':outputs', ':discarded'].map(
          (s) => `${p}unit:${u}${s}`,
        )
        keys.push(`${p}unit:${u}`)
        for (let r = 1; r <= Number(seqs[k] ?? 0); r++) keys.push(`${p}replica:${u}:r${r}`)
        for (const key of keys) {
          if (ttlMs === undefined) pipe.persist(key)
          else pipe.pexpire(key, ttlMs)
        }
      })
      await pipe.exec()
    }
    return missing
  }

  /** Store results (see SUBMIT), in one round trip; each gets its own status, in order. */
  const submitMany = async (
    rs: SubmittedResult[],
    now: number,
  ): Promise<{ status: SubmitStatus; detail: string }[]> => {
    // Sent together on one connection: Redis runs them in this order, and their round trips overlap.
    const out = await Promise.all(
      rs.map((r) =>
        redis.cohortSubmit(
          p,
          r.replicaId,
          r.worker,
          r.unitId,
          r.digest,
          Buffer.from(r.output.buffer, r.output.byteOffset, r.output.byteLength),
          now,
          r.computeMs,
        ),
      ),
    )
    if (replicated !== undefined && out.some(([status]) => status === 'accepted')) await replicated()
    return out.map(([status, detail]) => ({ status: status as SubmitStatus, detail: detail ?? '' }))
  }

  /** The results stored for each unit, in one round trip. */
  const unitResultsMany = async (unitIds: string[]): Promise<ReplicaResult[][]> => {
    if (unitIds.length === 0) return []
    const pipe = redis.pipeline() as unknown as ReadPipeline
    for (const u of unitIds) pipe.hgetall(`${p}unit:${u}:results`)
    return (await replies<Record<string, string>>(pipe)).map((h) =>
      Object.entries(h).map(([replicaId, v]) => {
        const [digest = '', worker = ''] = v.split('|')
        return { replicaId, digest, worker }
      }),
    )
  }

  /** Decide units (see DECIDE) in one round trip; each verdict in order. */
  const decideMany = async (requests: DecideRequest[], now: number): Promise<DecideOutcome[]> => {
    const out = await Promise.all(
      requests.map((d) =>
        redis.cohortDecide(
          p,
          d.unitId,
          now,
          d.nResults,
          d.draw,
          ...d.groups.map((g) => `${g.digest}|${g.replicaIds.join(',')}`),
        ),
      ),
    )
    return out.map((r) => ({
      verdict: r[0] as Verdict,
      validated: Number(r[1]),
      failed: Number(r[2]),
      total: Number(r[3]),
      caught: Array.isArray(r[4]) ? r[4].map(String) : [],
      note: (r[5] ?? '') as DecideOutcome['note'],
    }))
  }

  return {
    prefix: p,
    submitMany,
    unitResultsMany,
    decideMany,

    async ping(): Promise<boolean> {
      return (await redis.ping()) === 'PONG'
    },

    /**
     * Create a job, counting `admission.units` in flight for its owner until the finished job is
     * swept; refused (nothing written) when that would pass `admission.limit`.
     */
    async createJob(job: NewJob, now: number, admission: Admission): Promise<CreateOutcome> {
      const fields: Record<string, string | number> = {
        id: job.id,
        type: job.type,
        version: job.version,
        kind: `${job.type}@${job.version}`,
        params: JSON.stringify(job.params),
        quorum: job.quorum,
        maxReplicas: job.maxReplicas,
        minCredibility: job.minCredibility,
        spotCheckRate: job.spotCheckRate,
        priority: job.priority,
        owner: job.owner,
        state: 'queued',
        createdAt: now,
        updatedAt: now,
        unitsTotal: 0,
        unitsValidated: 0,
        unitsFailed: 0,
        replicasExtra: 0,
        planned: 0,
      }
      if (job.plan !== undefined) fields['plan'] = JSON.stringify(job.plan)
      const inFlight = await redis.cohortCreateJob(
        p,
        job.id,
        job.owner,
        admission.units,
        admission.limit ?? -1,
        now,
        ...Object.entries(fields).flat(),
      )
      return inFlight < 0 ? { created: true } : { created: false, inFlight }
    },

    /** Units of `owner`'s unfinished jobs (finished ones count until they are swept). */
    async unitsInFlight(owner: string): Promise<number> {
      return Number((await redis.hget(`${p}owner:${owner}`, 'units')) ?? 0)
    },

    /** Take one of `owner`'s request tokens: 0 when granted, else the ms until one is free. */
    async takeToken(owner: string, perMinute: number): Promise<number> {
      return redis.cohortTakeToken(`${p}rate:${owner}`, perMinute)
    },

    async getJob(id: string): Promise<JobRecord | undefined> {
      const [h, open] = await Promise.all([
        redis.hgetall(jobKey(id)),
        redis.hgetall(`${jobKey(id)}:revising`),
      ])
      if (h['id'] === undefined || !STATES.has(h['state'] ?? '')) return undefined
      const rec: JobRecord = {
        id,
        type: h['type'] ?? '',
        version: num(h['version']),
        kind: h['kind'] ?? '',
        params: JSON.parse(h['params'] ?? 'null') as unknown,
        quorum: num(h['quorum']),
        maxReplicas: num(h['maxReplicas']),
        minCredibility: num(h['minCredibility']),
        spotCheckRate: num(h['spotCheckRate']),
        priority: num(h['priority']),
        owner: h['owner'] ?? '',
        state: h['state'] as JobState,
        createdAt: num(h['createdAt']),
        updatedAt: num(h['updatedAt']),
        unitsTotal: num(h['unitsTotal']),
        unitsValidated: num(h['unitsValidated']),
        unitsFailed: num(h['unitsFailed']),
        replicasExtra: num(h['replicasExtra']),
        planned: h['planned'] === '1',
        generation: num(h['generation']),
        revisions: revisionsOf(h['revisions'], open),
      }
      if (h['plan'] !== undefined) rec.plan = JSON.parse(h['plan']) as PlanView
      if (h['error'] !== undefined) rec.error = h['error']
      if (h['result'] !== undefined) rec.result = JSON.parse(h['result']) as unknown
      return rec
    },

    async jobKind(id: string): Promise<string | null> {
      return redis.hget(jobKey(id), 'kind')
    },

    /** The most recent job ids, all of them or only `owner`'s. */
    async listJobIds(limit: number, owner?: string): Promise<string[]> {
      const key = owner === undefined ? `${p}jobs` : `${p}owner:${owner}:jobs`
      return redis.zrevrange(key, 0, limit - 1)
    },

    async activeJobIds(): Promise<string[]> {
      return redis.smembers(`${p}active`)
    },

    /** Replicas waiting for a worker, all jobs together (some may be held back for a while). */
    async readyCount(): Promise<number> {
      return redis.zcard(`${p}ready`)
    },

    /**
     * The job's unit count, and the job type's estimate of one unit's compute time in ms: the base
     * of each lease's lifetime bound and of the credit for each validated result.
     */
    async setUnitsTotal(jobId: string, total: number, unitMs: number): Promise<void> {
      await redis.cohortSetUnitsTotal(p, jobId, total, unitMs)
    },

    async markPlanned(jobId: string, now: number): Promise<void> {
      await redis.hset(jobKey(jobId), 'planned', 1, 'updatedAt', now)
    },

    /** Create units (and their first `quorum` replicas); idempotent per index. */
    async addUnits(jobId: string, quorum: number, units: { index: number; input: unknown }[], now: number) {
      const args: (string | number)[] = [p, jobId, quorum, now, units.length]
      for (const u of units) args.push(u.index, JSON.stringify(u.input))
      return redis.cohortAddUnits(...args)
    },

    /**
     * Serve one work request (see WORK): rate limit, grants lost in transit (when `holding` is
     * given), the lease cap, then up to `want` replicas of the kinds in `accepts`.
     */
    async work(
      worker: string,
      want: number,
      accepts: string[],
      holding: string[] | undefined,
      rules: LeaseRules,
      now: number,
      /** The signed request's nonce, recorded for `ttlMs` (status `replayed` when seen before). */
      nonce: { value: string; ttlMs: number },
    ): Promise<WorkOutcome> {
      const [status, retryAfterMs, cap, held, reclaimed, rows, idle] = await redis.cohortWork(
        p,
        worker,
        want,
        now,
        rules.leaseMs,
        rules.leaseScan,
        accepts.join(','),
        rules.workRequestBurst,
        rules.workRequestsPerSecond,
        rules.leaseCapBase,
        rules.leaseCapPerValidated,
        rules.leaseCapMax,
        rules.leaseLifetimeFloorMs,
        rules.leaseLifetimeFactor,
        rules.maxWorkersPerUnit,
        rules.reissueHoldMs,
        rules.letGoGraceMs,
        // A fresh secret seed per request for the random pick (placement).
        randomInt(1, 2147483647),
        rules.replicaSpreadMs,
        holding === undefined ? '0' : '1',
        GRANT_INPUT_BYTES,
        3 * rules.idleRetryMaxMs,
        nonce.value,
        nonce.ttlMs,
        ...(holding ?? []),
      )
      return {
        status: status as WorkOutcome['status'],
        retryAfterMs: Number(retryAfterMs),
        cap: Number(cap),
        holding: Number(held),
        reclaimed: Number(reclaimed),
        leased: rows.map(leasedRow),
        idle: Number(idle),
      }
    },

    /** Move the leases `from` holds on `replicaIds` to `to` (see TRANSFER). */
    async transfer(
      from: string,
      to: string,
      replicaIds: string[],
      leaseMs: number,
      maxWorkersPerUnit: number,
      now: number,
    ): Promise<TransferOutcome> {
      const [moved, refused, givenBack] = await redis.cohortTransfer(
        p,
        from,
        to,
        now,
        leaseMs,
        maxWorkersPerUnit,
        ...replicaIds,
      )
      return { moved: moved.map(leasedRow), refused, givenBack: Number(givenBack) }
    },

    /**
     * Extend leases, never past their lifetime bound. `lost`: replicas the worker no longer holds;
     * `pastLifetime`: how many of those ended now because their lifetime was over (reissued).
     */
    async renew(
      worker: string,
      replicaIds: string[],
      rules: Pick<LeaseRules, 'leaseMs' | 'leaseLifetimeFloorMs' | 'maxWorkersPerUnit'>,
      now: number,
    ) {
      const [flat, ended] = await redis.cohortRenew(
        p,
        worker,
        now,
        rules.leaseMs,
        rules.leaseLifetimeFloorMs,
        rules.maxWorkersPerUnit,
        ...replicaIds,
      )
      const expiresAt: Record<string, number> = {}
      const lost: string[] = []
      for (let i = 0; i + 1 < flat.length; i += 2) {
        const rid = flat[i] as string
        const v = flat[i + 1] as string
        if (v === 'lost') lost.push(rid)
        else expiresAt[rid] = Number(v)
      }
      return { expiresAt, lost, pastLifetime: Number(ended) }
    },

    /** The worker hands leases back: charged to it, and it never gets those units again. */
    async release(
      worker: string,
      replicaIds: string[],
      maxWorkersPerUnit: number,
      now: number,
    ): Promise<number> {
      return redis.cohortRelease(p, worker, now, maxWorkersPerUnit, ...replicaIds)
    },

    /**
     * The unit of a replica `worker` holds a live lease on now (leased to it, before its deadline,
     * its job running and the unit pending): its kind and input. Undefined otherwise. Read only.
     */
    async heldUnit(
      worker: string,
      replicaId: string,
      now: number,
    ): Promise<{ jobId: string; unitId: string; kind: string; input: unknown } | undefined> {
      const [state, holder, unitId, jobId, deadline] = await redis.hmget(
        `${p}replica:${replicaId}`,
        'state',
        'worker',
        'unitId',
        'jobId',
        'deadline',
      )
      if (state !== 'leased' || holder !== worker || unitId == null || jobId == null) return undefined
      if (!(Number(deadline) > now)) return undefined
      const [jobState, kind] = await redis.hmget(jobKey(jobId), 'state', 'kind')
      const [unitState, input] = await redis.hmget(`${p}unit:${unitId}`, 'state', 'input')
      if (!ACTIVE.has(jobState ?? '') || unitState !== 'pending') return undefined
      if (kind == null || input == null) return undefined
      return { jobId, unitId, kind, input: JSON.parse(input) as unknown }
    },

    /** Record a signed request's nonce; false when it was seen before (a replay). */
    async useNonce(worker: string, nonce: string, ttlMs: number): Promise<boolean> {
      return (await redis.set(`${p}nonce:${worker}:${nonce}`, '1', 'PX', ttlMs, 'NX')) === 'OK'
    },

    async expire(now: number, limit: number, maxWorkersPerUnit: number): Promise<number> {
      return redis.cohortExpire(p, now, limit, maxWorkersPerUnit)
    },

    async unitResults(unitId: string): Promise<ReplicaResult[]> {
      const [results = []] = await unitResultsMany([unitId])
      return results
    },

    async unitOutputs(unitId: string, digests: string[]): Promise<(Buffer | null)[]> {
      if (digests.length === 0) return []
      return redis.hmgetBuffer(`${p}unit:${unitId}:outputs`, ...digests)
    },

    /**
     * Decide a unit on the groups of agreeing results over `nResults` results (see DECIDE); `draw`
     * is a uniform random number in [0, 1) for the spot-check draw.
     */
    async decide(
      unitId: string,
      nResults: number,
      groups: ResultGroup[],
      draw: number,
      now: number,
    ): Promise<DecideOutcome> {
      const [outcome] = await decideMany([{ unitId, nResults, groups, draw }], now)
      return outcome!
    },

    /** The credibility DECIDE gives `worker` now, and the part it earned (without a vouch). */
    async credibility(worker: string): Promise<{ credibility: number; earned: number }> {
      const [cr, earned] = await redis.cohortCredibility(p, worker)
      return { credibility: Number(cr), earned: Number(earned) }
    },

    /** Vouch for the operator's own hosts; returns how many were not vouched before. */
    async vouch(workers: string[]): Promise<number> {
      if (workers.length === 0) return 0
      return redis.cohortVouch(p, ...workers)
    },

    /** Write the deployment's trust parameters, read by every script. */
    async setTrustParams(t: TrustParams): Promise<void> {
      await redis.cohortTrustParams(
        p,
        t.saboteurFraction,
        t.vouchedCredibility,
        t.anchorCredibility,
        t.unanchoredGroup,
        t.minCredibility,
        t.spotCheckRate,
      )
    },

    /** Canonical outputs of units [0, total) of a job, in order. */
    async canonicalOutputs(jobId: string, total: number): Promise<(Buffer | null)[]> {
      const out: (Buffer | null)[] = []
      const batch = 500
      for (let i = 0; i < total; i += batch) {
        const pipe = redis.pipeline()
        for (let j = i; j < Math.min(total, i + batch); j++)
          pipe.hgetBuffer(`${p}unit:${jobId}:${j}`, 'output')
        const res = (await pipe.exec()) ?? []
        for (const [err, v] of res) {
          if (err) throw err
          out.push((v as Buffer | null) ?? null)
        }
      }
      return out
    },

    /** Units [from, from + count) of a job: state, canonical output when validated, error when failed. */
    async unitRows(
      jobId: string,
      from: number,
      count: number,
    ): Promise<{ index: number; state: string; output: Buffer | null; error: string | null }[]> {
      const pipe = redis.pipeline()
      for (let j = from; j < from + count; j++)
        pipe.hmgetBuffer(`${p}unit:${jobId}:${j}`, 'state', 'output', 'error')
      const res = (await pipe.exec()) ?? []
      const rows = res.map(([err, v], k) => {
        if (err) throw err
        const [state, output, error] = v as (Buffer | null)[]
        return {
          index: from + k,
          state: state?.toString('utf8') ?? 'pending',
          output: output ?? null,
          error: error?.toString('utf8') ?? null,
        }
      })
      return rows
    },

    /** Complete (or finish revising) a job merged from its outputs at `generation`; false if stale. */
    async completeJob(jobId: string, result: unknown, generation: number, now: number): Promise<boolean> {
      const done =
        (await redis.cohortComplete(p, jobId, JSON.stringify(result), now, String(generation))) === 1
      if (done) await replicated?.()
      return done
    },

    async failJob(jobId: string, reason: string, now: number): Promise<void> {
      await redis.cohortFailJob(p, jobId, reason, now)
    },

    /** Jobs that ended (completed, failed, cancelled) and whose data has no expiry yet. */
    async endedJobIds(limit: number): Promise<string[]> {
      return redis.zrange(`${p}ended`, 0, String(limit - 1))
    },

    /**
     * Give a finished job's units, replicas and results an expiry of `unitTtlMs`, and the job itself
     * (state and result) one of `jobTtlMs`. Old entries of the job list are dropped too.
     */
    async expireJobData(jobId: string, unitTtlMs: number, jobTtlMs: number, now: number): Promise<void> {
      // The finished job no longer counts against its owner's units in flight.
      await redis.cohortReleaseUnits(p, jobId)
      const owner = await redis.hget(jobKey(jobId), 'owner')
      await unitKeys(jobId, unitTtlMs)
      // A job reopened for revision meanwhile keeps its data (backtracking holds it too, see holdJobData).
      if (ACTIVE.has((await redis.hget(jobKey(jobId), 'state')) ?? '')) {
        await unitKeys(jobId, undefined)
        await redis
          .multi()
          .zrem(`${p}ended`, jobId)
          .persist(jobKey(jobId))
          .persist(eventScripts.eventsKey(p, jobId))
          .exec()
        return
      }
      await redis
        .multi()
        .pexpire(jobKey(jobId), jobTtlMs)
        .pexpire(`${jobKey(jobId)}:revising`, jobTtlMs)
        .pexpire(eventScripts.eventsKey(p, jobId), jobTtlMs)
        .zrem(`${p}ended`, jobId)
        .zremrangebyscore(`${p}jobs`, '-inf', now - jobTtlMs)
        .zremrangebyscore(`${p}owner:${owner ?? ''}:jobs`, '-inf', now - jobTtlMs)
        .exec()
    },

    /**
     * Keep a job being revised and all its units' data (no expiry) until it ends again. Returns how
     * many units had no data left (expired before the revision began): the job cannot be merged again.
     */
    async holdJobData(jobId: string): Promise<number> {
      await redis
        .multi()
        .persist(jobKey(jobId))
        .persist(`${jobKey(jobId)}:revising`)
        .persist(eventScripts.eventsKey(p, jobId))
        .exec()
      return unitKeys(jobId, undefined)
    },

    /** Catch `worker` (see CATCH): banned from now on and due for backtracking. True the first time. */
    async markCaught(worker: string, reason: string, now: number): Promise<boolean> {
      return (await redis.cohortCatch(p, worker, reason.slice(0, 500), now)) === 1
    },

    async caught(worker: string): Promise<Caught | undefined> {
      const [at, reason, done] = await redis.hmget(
        `${p}worker:${worker}`,
        'caught',
        'caughtReason',
        'backtrackedAt',
      )
      if (at === null) return undefined
      return {
        at: Number(at),
        reason: reason ?? '',
        ...(done === null ? {} : { backtrackedAt: Number(done) }),
      }
    },

    /** Caught identities whose backtracking has not finished, oldest first. */
    async backtracksDue(limit: number): Promise<string[]> {
      return redis.zrange(`${p}backtrack:due`, 0, String(limit - 1))
    },

    async isDue(worker: string): Promise<boolean> {
      return (await redis.zscore(`${p}backtrack:due`, worker)) !== null
    },

    /** End every lease of a caught identity (see REVOKE_LEASES); returns the units reissued. */
    async revokeLeases(worker: string, now: number): Promise<number> {
      return redis.cohortRevokeLeases(p, worker, now)
    },

    /** Units of the worker's reverse index (units it has results for), up to `limit`. */
    async workerUnits(worker: string, limit: number): Promise<string[]> {
      return redis.zrange(`${p}worker:${worker}:units`, 0, String(limit - 1))
    },

    async forgetWorkerUnit(worker: string, unitId: string): Promise<void> {
      await redis.zrem(`${p}worker:${worker}:units`, unitId)
    },

    /** Discard a caught worker's results for one unit and reopen it if they backed it (see BACKTRACK_UNIT). */
    async backtrackUnit(
      unitId: string,
      worker: string,
      reason: string,
      now: number,
    ): Promise<BacktrackUnitOutcome> {
      const [unitState, jobId, jobState, discarded, reopened] = await redis.cohortBacktrackUnit(
        p,
        unitId,
        worker,
        reason,
        now,
      )
      return { unitState, jobId, jobState, discarded: Number(discarded), reopened: Number(reopened) === 1 }
    },

    async finishBacktrack(worker: string, now: number): Promise<boolean> {
      return (await redis.cohortFinishBacktrack(p, worker, now)) === 1
    },

    /** The results discarded by backtracking, per replica: digest and worker. */
    async discardedResults(unitId: string): Promise<ReplicaResult[]> {
      const h = await redis.hgetall(`${p}unit:${unitId}:discarded`)
      return Object.entries(h).map(([replicaId, v]) => {
        const [digest = '', worker = ''] = v.split('|')
        return { replicaId, digest, worker }
      })
    },

    async cancel(jobId: string, now: number): Promise<JobState | undefined> {
      const prev = await redis.cohortCancel(p, jobId, now)
      return prev === null ? undefined : (prev as JobState)
    },

    /**
     * What sign-up recorded about an identity for replica placement: its owner (itself when not
     * linked, or never signed up here) and its network ('' when exempt or unknown).
     */
    async identityAttributes(worker: string): Promise<{ owner: string; network: string }> {
      const [owner, net] = await redis.hmget(`${p}worker:${worker}`, 'owner', 'net')
      return { owner: owner ?? worker, network: net ?? '' }
    },

    async workerStats(worker: string): Promise<WorkerStats> {
      const h = await redis.hgetall(`${p}worker:${worker}`)
      return {
        results: num(h['results']),
        valid: num(h['valid']),
        invalid: num(h['invalid']),
        creditMs: num(h['creditMs']),
        claimedMs: num(h['claimedMs']),
        released: num(h['released']),
        expired: num(h['expired']),
        passed: num(h['passed']),
        spotPassed: num(h['spotPassed']),
        vouched: h['vouched'] === '1',
        ...(h['caught'] === undefined
          ? {}
          : { caught: { at: num(h['caughtAt']), reason: h['caughtReason'] ?? '' } }),
      }
    },

    async replicaState(replicaId: string): Promise<Record<string, string>> {
      return redis.hgetall(`${p}replica:${replicaId}`)
    },

    /**
     * For each replica, the workers that hold, held or computed a replica of its unit: the unit's
     * worker set, and every replica's lease holder and the worker it was last transferred from.
     */
    async unitWorkers(replicaIds: string[]): Promise<Map<string, Set<string>>> {
      const out = new Map<string, Set<string>>()
      const byUnit = new Map<string, Set<string>>()
      for (const rid of replicaIds) {
        const uid = await redis.hget(`${p}replica:${rid}`, 'unitId')
        if (uid === null) {
          out.set(rid, new Set())
          continue
        }
        let workers = byUnit.get(uid)
        if (workers === undefined) {
          const [members, seq] = await Promise.all([
            redis.smembers(`${p}unit:${uid}:workers`),
            redis.hget(`${p}unit:${uid}`, 'replicaSeq'),
          ])
          workers = new Set(members)
          const n = Math.min(Number(seq ?? 0), 1_000)
          const rows = await Promise.all(
            Array.from({ length: n }, (_, i) =>
              redis.hmget(`${p}replica:${uid}:r${i + 1}`, 'worker', 'transferredFrom'),
            ),
          )
          for (const row of rows) for (const w of row) if (w !== null) workers.add(w)
          byUnit.set(uid, workers)
        }
        out.set(rid, workers)
      }
      return out
    },
  }
}
