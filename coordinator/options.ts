// Coordinator options: defaults in one place, every field documented, validated once.
import { ConfigError, LIMITS, MAX_CONTENT_BYTES, MAX_POW_BITS } from '../shared/index.js'
import {
  ANONYMOUS_QUOTA,
  parseApiKeyList,
  parseQuota,
  SUBMITTER_QUOTA,
  type ApiKeySpec,
  type Quota,
} from './http/api-keys.js'
import { DEFAULT_EXEMPT_NETWORKS, parseCidrList } from './credentials/client-network.js'

export interface CoordinatorTuning {
  /**
   * Key prefix in Redis; several deployments may share one Redis. Default `cohort:`. On a Redis Cluster
   * it must hold a hash tag, e.g. `{cohort}:` (docs/redis-cluster.md).
   */
  redisPrefix: string
  /**
   * Replicas that must acknowledge a result's acceptance and a job's completion (Redis WAIT) before
   * they are reported; 0 (the default) waits for none. Narrows what a failover can lose, does not
   * close it (docs/redis-cluster.md).
   */
  redisWaitReplicas: number
  /** How long such a WAIT may take, in ms; the write stands either way. Default 1000. */
  redisWaitTimeoutMs: number
  /** NATS subject prefix. Default `cohort`. */
  subjectPrefix: string
  /** Lease length handed to workers; they renew well before it ends. Default 30000 ms. */
  leaseMs: number
  /** How often expired leases are looked for. Default 1000 ms. */
  reapIntervalMs: number
  /** How often unfinished bookkeeping (planning, assimilation) is re-checked. Default 5000 ms. */
  sweepIntervalMs: number
  /**
   * Distinct workers that may take one unit and let it go without a result (hand it back, lose it
   * in transit, let it expire) before the unit fails: the operator's budget for a unit nobody can
   * finish. Lost leases are charged to workers, never to the unit, below this. Default 20.
   */
  maxWorkersPerUnit: number
  /** Leases a worker with no validated work may hold at once. Default 4. */
  leaseCapBase: number
  /**
   * Validated results (net of leases the worker let go) that earn one more concurrent lease.
   * Default 2: cap = base + floor(max(0, valid - released - expired) / 2).
   */
  leaseCapPerValidated: number
  /** Most leases any worker may hold at once. Default 256 (also the most: what one request lists). */
  leaseCapMax: number
  /** Work requests one worker may make in a burst (token bucket shared by all coordinators). Default 20. */
  workRequestBurst: number
  /** Work requests per second that refill a worker's bucket. Default 10. */
  workRequestsPerSecond: number
  /**
   * A replica's lease, renewals and transfers included, ends at most this long after it was first
   * leased, or `leaseLifetimeFactor` times the job type's unit estimate when that is longer.
   * Default 600000 ms (10 minutes).
   */
  leaseLifetimeFloorMs: number
  /** Lifetime bound as a multiple of `estimateCost(params).unitSeconds`. Default 20. */
  leaseLifetimeFactor: number
  /**
   * A replica reissued after a lease ended without a result goes, for this long, only to workers
   * with standing (at least one validated result more than leases they let go); then to anyone.
   * Default 10000 ms; 0 turns it off.
   */
  reissueHoldMs: number
  /**
   * A worker that let a unit go (handed it back, lost its lease) gets that unit again only after a
   * replica of it has waited this long with nobody else taking it. Default 30000 ms.
   */
  letGoGraceMs: number
  /** Ready replicas scanned per work request to find ones this worker may take. Default 512. */
  leaseScan: number
  /** Default quorum of agreeing results from distinct workers. Default 2. */
  defaultQuorum: number
  /**
   * Credibility a unit's accepted result must reach, for jobs that do not set
   * `redundancy.minCredibility`. Default 0.9999 (a wrong result accepted at most once in 10,000 units
   * under the assumed saboteur fraction; docs/security.md).
   */
  defaultMinCredibility: number
  /**
   * Chance that a result accepted alone (adaptive replication) is checked by the unit's other
   * replicas, for jobs that do not set `redundancy.spotCheckRate`. Default 0.1.
   */
  defaultSpotCheckRate: number
  /** Assumed fraction of saboteurs among identities, f, in the credibility formula. Default 0.1. */
  saboteurFraction: number
  /**
   * Credibility an identity needs for its group of agreeing results to be accepted: a group without
   * one is never enough (unless `unanchoredGroup` allows it). Default 0.99: five checked results at f = 0.1.
   */
  anchorCredibility: number
  /** Credibility of a vouched host (the operator's own) until it earns more. Default 0.99999. */
  vouchedCredibility: number
  /**
   * Agreeing identities that validate a unit without an anchor, when their credibility reaches the
   * target: a public deployment with no vouched host bootstraps this way. Default 0 (never).
   */
  unanchoredGroup: number
  /** Peer ids of the operator's own hosts, vouched for at start. Default []. */
  vouchedWorkers: string[]
  /**
   * Vouch for every identity that signs up: only for a private cluster whose sign-up nobody but
   * the operator's hosts can reach (the test clusters). Default false.
   */
  vouchSignups: boolean
  /** Largest HTTP request body. Default 64 KiB. */
  maxBodyBytes: number
  /**
   * Log one line per HTTP request (namespace `coordinator:http:access`): method, route template, status,
   * ms, response bytes and the caller's owner id; never keys or bodies. Default true.
   */
  accessLog: boolean
  /** Job event streams (GET /v1/jobs/:id/events) open at once; more are refused (503). Default 256. */
  eventStreamsMax: number
  /** An idle event stream sends a comment this often. Default 15000 ms. */
  eventHeartbeatMs: number
  /** An event stream ends after this long; clients resume with Last-Event-ID. Default 1800000 ms. */
  eventStreamMaxMs: number
  /** Most NATS requests handled at once; beyond that requests are refused as busy. Default 512. */
  maxInflight: number
  /** Shutdown waits this long for in-flight work before giving up. Default 10000 ms. */
  stopTimeoutMs: number
  /**
   * API keys: each a name (the owner of what the key creates), a role (`submitter` or `admin`), the
   * key's SHA-256 (or the key itself, hashed at once) and quota overrides. Default [].
   */
  apiKeys: ApiKeySpec[]
  /** Whether callers without a key may use the API, as the one owner `anonymous`. Default false. */
  anonymous: boolean
  /** Quota of anonymous callers. Default 1,000 units in flight, 64 MiB, 120 requests/min, priority ≤ 0. */
  anonymousQuota: Quota
  /** Quota of submitter keys without overrides. Default 100,000 units, 1 GiB, 600 requests/min, priority ≤ 10. */
  submitterQuota: Quota
  /** How long an upload (module, blob, dataset) is kept after its owner last uploaded or used it. Default 7 days. */
  uploadRetentionMs: number
  /** How long units, replicas and results of a finished job are kept. Default 1 hour. */
  unitRetentionMs: number
  /** How long a finished job (state and result) is kept. Default 30 days. */
  jobRetentionMs: number
  /** Largest WebAssembly module accepted by POST /v1/modules. Default 4 MiB (also the most). */
  maxModuleBytes: number
  /** Largest input blob accepted by POST /v1/blobs. Default 4 MiB (also the most). */
  maxBlobBytes: number
  /** Largest dataset accepted by POST /v1/datasets (streamed, never held whole). Default 256 MiB, at most 512 MiB. */
  maxDatasetBytes: number
  /** Largest memory maximum a module may declare, in 64 KiB pages. Default 256 (16 MiB, also the most). */
  maxModulePages: number
  /**
   * Bytes of modules, chunks and manifests one identity may be served over NATS per minute, shared by
   * all coordinators (a token bucket in Redis holding one minute's worth). Past it a data request is
   * answered `over-budget` with the time to wait. Default 1 GiB: about four times what the largest unit
   * can need (a 256 MiB dataset and a 4 MiB module) with no peer to share it. At least 64 KiB.
   */
  egressBytesPerMinute: number
  /** Proof of work asked of a volunteer at sign-up, in leading zero bits of SHA-256. Default 21 (about a second of one core). */
  signupPowBits: number
  /** How long a sign-up challenge may be answered. Default 120000 ms. */
  signupChallengeTtlMs: number
  /** Sign-ups allowed per source address (IPv4 address, IPv6 /64) per window, shared by all coordinators. Default 30. */
  signupPerAddress: number
  /** The sign-up rate limit's window. Default 3600000 ms (one hour). */
  signupWindowMs: number
  /** How long a volunteer's NATS credentials are valid; it signs up again before they expire. Default 24 h. */
  volunteerCredentialTtlMs: number
  /**
   * Reverse proxies (CIDR ranges) whose X-Forwarded-For header is believed: a request from one of
   * them counts as coming from the right-most forwarded address that is not itself a trusted proxy
   * (for sign-up's rate limit and the volunteer's network). Default [] (the socket's peer is the client).
   */
  trustedProxies: string[]
  /**
   * Networks (CIDR ranges) whose volunteers have no network for replica placement: two identities
   * signed up from them may get replicas of one unit (distinct owners still apply). Default loopback,
   * RFC 1918 and IPv6 unique local addresses, so workers on one machine or LAN can form a quorum.
   */
  placementExemptNetworks: string[]
  /**
   * After a replica of a unit is leased, the unit's next replica may be leased only after a random
   * delay of `replicaSpreadMs / 2` to `replicaSpreadMs`, so replicas of one unit are never handed out
   * back to back. Default 1000 ms; 0 turns it off.
   */
  replicaSpreadMs: number
  /**
   * An idle worker's wait after its first empty grant in a row (nothing ready it may take). Each
   * further empty grant doubles it, up to `idleRetryMaxMs`; a grant with units starts it afresh.
   * The wait a grant says (`retryAfterMs`) is drawn between half of it and all of it, so an idle
   * crowd does not ask in step. A worker still hears `work.available` meanwhile. Default 1000 ms.
   */
  idleRetryMs: number
  /** The longest wait an empty grant asks for. Default 120000 ms (2 minutes). */
  idleRetryMaxMs: number
  /**
   * The idle crowd's requests per second, all together, that the longest wait aims at: it is the
   * number of workers online (asked in the last minute) divided by this, within `idleRetryMs` ..
   * `idleRetryMaxMs`. A few workers keep asking every second; a thousand wait up to minutes. Default 10.
   */
  idleRequestsPerSecond: number
  /**
   * Most `work.available` wake-ups sent at once: one per newly ready replica, each to one volunteer
   * of the queue group, up to this many. Default 1000.
   */
  wakeMax: number
  /**
   * The planner's target: seconds one unit takes on a typical worker thread, for jobs whose submitter
   * sets neither the unit size nor `plan.unitSeconds`. Default 3.
   */
  plannerUnitSeconds: number
  /**
   * Units are never planned smaller than this many seconds (unless the whole job is smaller), so the
   * platform's cost per unit (about a millisecond) stays negligible. Default 0.05.
   */
  plannerMinUnitSeconds: number
  /**
   * A job is split into at least this many units per online worker thread, divided by its quorum
   * (when its total work allows units of `plannerMinUnitSeconds`), so a small job keeps every thread
   * busy. Default 3.
   */
  plannerUnitsPerThread: number
  /** Worker threads the planner assumes online at least (with no worker seen lately). Default 8. */
  plannerThreads: number
  /** Threads counted per worker that delivered a validated result in the last 5 minutes. Default 4. */
  plannerThreadsPerWorker: number
}

/** Bounds of a credibility target (`minCredibility`). */
export const MIN_CREDIBILITY = 0.5
export const MAX_CREDIBILITY = 0.999999
/** Longest unit a planner target (`plannerUnitSeconds`, a job's `plan.unitSeconds`) may ask for. */
export const MAX_UNIT_SECONDS = 3600
const PEER_ID = /^[A-Za-z0-9_-]{43}$/

export const DEFAULT_TUNING: CoordinatorTuning = {
  redisPrefix: 'cohort:',
  redisWaitReplicas: 0,
  redisWaitTimeoutMs: 1000,
  subjectPrefix: 'cohort',
  leaseMs: 30_000,
  reapIntervalMs: 1_000,
  sweepIntervalMs: 5_000,
  maxWorkersPerUnit: 20,
  leaseCapBase: 4,
  leaseCapPerValidated: 2,
  leaseCapMax: 256,
  workRequestBurst: 20,
  workRequestsPerSecond: 10,
  leaseLifetimeFloorMs: 600_000,
  leaseLifetimeFactor: 20,
  reissueHoldMs: 10_000,
  letGoGraceMs: 30_000,
  leaseScan: 512,
  defaultQuorum: 2,
  defaultMinCredibility: 0.9999,
  defaultSpotCheckRate: 0.1,
  saboteurFraction: 0.1,
  anchorCredibility: 0.99,
  vouchedCredibility: 0.99999,
  unanchoredGroup: 0,
  vouchedWorkers: [],
  vouchSignups: false,
  maxBodyBytes: 64 * 1024,
  accessLog: true,
  eventStreamsMax: 256,
  eventHeartbeatMs: 15_000,
  eventStreamMaxMs: 30 * 60_000,
  maxInflight: 512,
  stopTimeoutMs: 10_000,
  apiKeys: [],
  anonymous: false,
  anonymousQuota: ANONYMOUS_QUOTA,
  submitterQuota: SUBMITTER_QUOTA,
  uploadRetentionMs: 7 * 24 * 3600_000,
  maxModuleBytes: 4 * 1024 * 1024,
  maxModulePages: 256,
  maxBlobBytes: 4 * 1024 * 1024,
  maxDatasetBytes: 256 * 1024 * 1024,
  unitRetentionMs: 3600_000,
  jobRetentionMs: 30 * 24 * 3600_000,
  egressBytesPerMinute: 1024 * 1024 * 1024,
  signupPowBits: 21,
  signupChallengeTtlMs: 120_000,
  signupPerAddress: 30,
  signupWindowMs: 3600_000,
  volunteerCredentialTtlMs: 24 * 3600_000,
  trustedProxies: [],
  placementExemptNetworks: [...DEFAULT_EXEMPT_NETWORKS],
  replicaSpreadMs: 1000,
  idleRetryMs: 1000,
  idleRetryMaxMs: 120_000,
  idleRequestsPerSecond: 10,
  wakeMax: 1000,
  plannerUnitSeconds: 3,
  plannerMinUnitSeconds: 0.05,
  plannerUnitsPerThread: 3,
  plannerThreads: 8,
  plannerThreadsPerWorker: 4,
}

function numberIn(name: string, v: unknown, min: number, max: number): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
    throw new ConfigError(`${name} must be a number in ${min}..${max}, got ${JSON.stringify(v)}`)
  }
}

function intIn(name: string, v: unknown, min: number, max: number): void {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new ConfigError(`${name} must be an integer in ${min}..${max}, got ${JSON.stringify(v)}`)
  }
}

/** Merge `given` over the defaults and validate every field. Unknown fields are refused. */
export function resolveTuning(given: Partial<CoordinatorTuning> = {}): CoordinatorTuning {
  for (const k of Object.keys(given)) {
    if (!(k in DEFAULT_TUNING)) throw new ConfigError(`unknown coordinator option "${k}"`)
  }
  const t: CoordinatorTuning = { ...DEFAULT_TUNING, ...given }
  if (
    typeof t.redisPrefix !== 'string' ||
    !/^[A-Za-z0-9_:.-]*(\{[A-Za-z0-9_:.-]+\}[A-Za-z0-9_:.-]*)?$/.test(t.redisPrefix) ||
    t.redisPrefix.length < 1 ||
    t.redisPrefix.length > 64
  )
    throw new ConfigError(
      'redisPrefix must be 1..64 of [A-Za-z0-9_:.-], with at most one hash tag such as {cohort}',
    )
  if (typeof t.subjectPrefix !== 'string' || !/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(t.subjectPrefix)) {
    throw new ConfigError('subjectPrefix must be NATS subject tokens separated by dots')
  }
  intIn('leaseMs', t.leaseMs, 500, 24 * 3600_000)
  intIn('reapIntervalMs', t.reapIntervalMs, 50, 60_000)
  intIn('sweepIntervalMs', t.sweepIntervalMs, 100, 600_000)
  intIn('maxWorkersPerUnit', t.maxWorkersPerUnit, 1, 1000)
  intIn('leaseCapBase', t.leaseCapBase, 1, LIMITS.maxReplicaIds)
  intIn('leaseCapPerValidated', t.leaseCapPerValidated, 1, 1_000_000)
  intIn('leaseCapMax', t.leaseCapMax, t.leaseCapBase, LIMITS.maxReplicaIds)
  intIn('workRequestBurst', t.workRequestBurst, 1, 10_000)
  intIn('workRequestsPerSecond', t.workRequestsPerSecond, 1, 10_000)
  intIn('leaseLifetimeFloorMs', t.leaseLifetimeFloorMs, 1000, 7 * 24 * 3600_000)
  intIn('leaseLifetimeFactor', t.leaseLifetimeFactor, 1, 1000)
  intIn('reissueHoldMs', t.reissueHoldMs, 0, 3600_000)
  intIn('letGoGraceMs', t.letGoGraceMs, 0, 7 * 24 * 3600_000)
  intIn('leaseScan', t.leaseScan, 16, 100_000)
  intIn('defaultQuorum', t.defaultQuorum, 1, 10)
  numberIn('defaultMinCredibility', t.defaultMinCredibility, MIN_CREDIBILITY, MAX_CREDIBILITY)
  numberIn('defaultSpotCheckRate', t.defaultSpotCheckRate, 0, 1)
  numberIn('saboteurFraction', t.saboteurFraction, 0.0001, 0.5)
  numberIn('anchorCredibility', t.anchorCredibility, 0, MAX_CREDIBILITY)
  numberIn('vouchedCredibility', t.vouchedCredibility, 0.5, MAX_CREDIBILITY)
  intIn('unanchoredGroup', t.unanchoredGroup, 0, 30)
  if (t.unanchoredGroup === 1) throw new ConfigError('unanchoredGroup must be 0 (never) or at least 2')
  if (typeof t.vouchSignups !== 'boolean') throw new ConfigError('vouchSignups must be true or false')
  if (!Array.isArray(t.vouchedWorkers) || t.vouchedWorkers.some((id) => !PEER_ID.test(String(id)))) {
    throw new ConfigError('vouchedWorkers must be a list of peer ids (43 base64url characters each)')
  }
  intIn('maxBodyBytes', t.maxBodyBytes, 1024, 16 * 1024 * 1024)
  if (typeof t.accessLog !== 'boolean') throw new ConfigError('accessLog must be true or false')
  intIn('eventStreamsMax', t.eventStreamsMax, 0, 100_000)
  intIn('redisWaitReplicas', t.redisWaitReplicas, 0, 16)
  intIn('redisWaitTimeoutMs', t.redisWaitTimeoutMs, 1, 60_000)
  intIn('eventHeartbeatMs', t.eventHeartbeatMs, 100, 600_000)
  intIn('eventStreamMaxMs', t.eventStreamMaxMs, 1_000, 24 * 3600_000)
  intIn('maxInflight', t.maxInflight, 1, 100_000)
  intIn('stopTimeoutMs', t.stopTimeoutMs, 0, 600_000)
  intIn('maxModuleBytes', t.maxModuleBytes, 1024, 4 * 1024 * 1024)
  intIn('maxBlobBytes', t.maxBlobBytes, 1024, 4 * 1024 * 1024)
  intIn('maxDatasetBytes', t.maxDatasetBytes, 1024, MAX_CONTENT_BYTES)
  intIn('maxModulePages', t.maxModulePages, 1, 256)
  intIn('unitRetentionMs', t.unitRetentionMs, 1000, 365 * 24 * 3600_000)
  intIn('jobRetentionMs', t.jobRetentionMs, 1000, 10 * 365 * 24 * 3600_000)
  intIn('egressBytesPerMinute', t.egressBytesPerMinute, 64 * 1024, 2 ** 40)
  intIn('uploadRetentionMs', t.uploadRetentionMs, 1000, 10 * 365 * 24 * 3600_000)
  t.apiKeys = parseApiKeyList(t.apiKeys, 'apiKeys')
  if (typeof t.anonymous !== 'boolean') throw new ConfigError('anonymous must be true or false')
  t.anonymousQuota = { ...ANONYMOUS_QUOTA, ...parseQuota(t.anonymousQuota, 'anonymousQuota') }
  t.submitterQuota = { ...SUBMITTER_QUOTA, ...parseQuota(t.submitterQuota, 'submitterQuota') }
  intIn('signupPowBits', t.signupPowBits, 0, MAX_POW_BITS)
  intIn('signupChallengeTtlMs', t.signupChallengeTtlMs, 1000, 3600_000)
  intIn('signupPerAddress', t.signupPerAddress, 1, 1_000_000)
  intIn('signupWindowMs', t.signupWindowMs, 1000, 7 * 24 * 3600_000)
  intIn('volunteerCredentialTtlMs', t.volunteerCredentialTtlMs, 10_000, 365 * 24 * 3600_000)
  t.trustedProxies = parseCidrList(t.trustedProxies, 'trustedProxies')
  t.placementExemptNetworks = parseCidrList(t.placementExemptNetworks, 'placementExemptNetworks')
  intIn('replicaSpreadMs', t.replicaSpreadMs, 0, 600_000)
  intIn('idleRetryMs', t.idleRetryMs, 10, 600_000)
  intIn('idleRetryMaxMs', t.idleRetryMaxMs, t.idleRetryMs, 600_000)
  numberIn('idleRequestsPerSecond', t.idleRequestsPerSecond, 0.01, 100_000)
  intIn('wakeMax', t.wakeMax, 1, 100_000)
  numberIn('plannerMinUnitSeconds', t.plannerMinUnitSeconds, 0.001, 60)
  numberIn('plannerUnitSeconds', t.plannerUnitSeconds, t.plannerMinUnitSeconds, MAX_UNIT_SECONDS)
  numberIn('plannerUnitsPerThread', t.plannerUnitsPerThread, 0.1, 100)
  intIn('plannerThreads', t.plannerThreads, 1, 1_000_000)
  intIn('plannerThreadsPerWorker', t.plannerThreadsPerWorker, 1, 1024)
  return t
}
