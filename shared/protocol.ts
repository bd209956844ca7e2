// Every message of the Cohort protocol, defined once and imported by both ends.
//
// Request/reply subjects are served by coordinators in one NATS queue group, so any number of
// coordinators share the load. Messages that a volunteer sends are signed envelopes; the payload
// inside names the volunteer, and the coordinator checks that the envelope's signer is that name.
import { toBase64Url } from './bytes.js'
import type { ContentRef } from './content.js'
import { DIGEST_HEX } from './digest.js'
import { ProtocolError } from './errors.js'
import {
  arrayField,
  bytesField,
  expectRecord,
  intField,
  literal,
  stringField,
  stringList,
  type Rec,
} from './schema.js'
import { parseUnitEnvelope, type UnitEnvelope } from './unit-batch.js'

export const PROTOCOL_VERSION = 1 as const

/** Job ids, unit ids and replica ids: short and safe in Redis keys and logs. */
export const ID_PATTERN = /^[A-Za-z0-9_:-]{1,96}$/
/** A peer's id: base64url of its 32-byte Ed25519 public key. */
export const PEER_ID_PATTERN = /^[A-Za-z0-9_-]{43}$/
/** `name@version` of a job type. */
export const JOB_KIND_PATTERN = /^[a-z][a-z0-9-]{0,31}@[1-9][0-9]{0,5}$/

export const LIMITS = {
  /**
   * Most units a worker may ask for in one request (and one grant's units under one signature:
   * 2^MAX_BATCH_DEPTH).
   */
  maxWant: 256,
  /** Largest signed unit body. */
  maxUnitBytes: 256 * 1024,
  /** Largest result output (msgpack bytes). */
  maxOutputBytes: 1024 * 1024,
  /** Most results in one `result.batch`. */
  maxBatchResults: 64,
  /** Most output bytes in one `result.batch` (one larger result travels alone). */
  maxBatchOutputBytes: 1024 * 1024,
  /** Most replicas named in one renew or release. */
  maxReplicaIds: 256,
  /** Largest WebAssembly module a coordinator serves over NATS (under NATS's max_payload). */
  maxModuleBytes: 4 * 1024 * 1024,
  /** How far a signed request's timestamp may be from the receiver's clock. */
  maxClockSkewMs: 5 * 60_000,
} as const

export interface Subjects {
  /** Worker asks for units (request/reply, queue group of coordinators). */
  workRequest: string
  /** Worker submits a signed result, or a batch of them under one signature (request/reply). */
  resultSubmit: string
  /** Worker extends its leases (request/reply). */
  leaseRenew: string
  /** Worker hands back leases it will not finish (request/reply). */
  leaseRelease: string
  /**
   * Coordinators announce that new replicas are waiting: one message per ready replica, no payload,
   * to the volunteers' queue group `WORK_AVAILABLE_QUEUE`, so each message wakes one volunteer.
   */
  workAvailable: string
  /** Worker fetches a WebAssembly module by its SHA-256 (request/reply). */
  moduleGet: string
  /** Worker fetches a content chunk or manifest no peer has, by its SHA-256 (request/reply). */
  chunkGet: string
  /** Worker claims leases a peer transferred to it (handoff, stealing; request/reply). */
  leaseClaim: string
  /**
   * Prefix of the peers' announcements (presence, free capacity, content held), sharded: a peer
   * announces on `<peerAnnounce>.<its 16 shard bits, one token each>` and listens to a sampled region.
   */
  peerAnnounce: string
  /** Prefix of provider lookups: `<peerWant>.<content root>`, answered by one holder (queue group). */
  peerWant: string
  /** Prefix of peers' own subjects: a peer listens on `<peerInbox>.<its id>` only. */
  peerInbox: string
}

export const COORDINATOR_QUEUE = 'cohort-coordinators'

/**
 * The queue group volunteers listen to `workAvailable` in: NATS hands each wake-up to one member, so
 * n ready replicas wake about n volunteers, not the whole crowd. Volunteers' permissions allow this
 * subject in this queue group only (a plain subscription is refused), so nobody hears every wake-up.
 */
export const WORK_AVAILABLE_QUEUE = 'cohort-volunteers'

/**
 * A volunteer's reply inbox prefix: `_INBOX.<its id>`. Volunteers connect with it (the NATS client's
 * `inboxPrefix`), may subscribe only below it, and coordinators reply only to subjects below the
 * signer's own prefix, so nobody reads another's replies or points a reply at someone else.
 */
export function inboxPrefixFor(peerId: string): string {
  return `_INBOX.${peerId}`
}

/** Whether `reply` is a reply subject inside `peerId`'s own inbox. */
export function isOwnInbox(reply: string | undefined, peerId: string): boolean {
  const prefix = `${inboxPrefixFor(peerId)}.`
  return (
    reply !== undefined && reply.length > prefix.length && reply.startsWith(prefix) && !/[\s*>]/.test(reply)
  )
}

export function subjectsFor(prefix = 'cohort'): Subjects {
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(prefix))
    throw new ProtocolError(`invalid subject prefix "${prefix}"`)
  const base = `${prefix}.v${PROTOCOL_VERSION}`
  return {
    workRequest: `${base}.work.request`,
    resultSubmit: `${base}.result.submit`,
    leaseRenew: `${base}.lease.renew`,
    leaseRelease: `${base}.lease.release`,
    workAvailable: `${base}.work.available`,
    moduleGet: `${base}.module.get`,
    chunkGet: `${base}.chunk.get`,
    leaseClaim: `${base}.lease.claim`,
    peerAnnounce: `${base}.peer.announce`,
    peerWant: `${base}.peer.want`,
    peerInbox: `${base}.peer.to`,
  }
}

// ---- payloads signed by the coordinator ---------------------------------------------------------

/** A replica of a unit, leased to one worker; what a worker runs. Signed by a coordinator key. */
export interface UnitPayload {
  type: 'unit'
  v: 1
  unitId: string
  replicaId: string
  jobId: string
  /** `name@version` of the job type. */
  kind: string
  input: unknown
  /** The worker this replica is leased to. */
  worker: string
  issuedAt: number
  /** Lease deadline at issue; renewals extend it on the coordinator's side. */
  expiresAt: number
  nonce: string
  /** Key id of the signing coordinator key. */
  kid: string
}

export function parseUnitPayload(value: unknown): UnitPayload {
  const r = expectRecord(value, 'unit')
  literal(r, 'type', 'unit')
  literal(r, 'v', 1)
  if (!('input' in r)) throw new ProtocolError('input is missing')
  return {
    type: 'unit',
    v: 1,
    unitId: stringField(r, 'unitId', 96, ID_PATTERN),
    replicaId: stringField(r, 'replicaId', 96, ID_PATTERN),
    jobId: stringField(r, 'jobId', 96, ID_PATTERN),
    kind: stringField(r, 'kind', 40, JOB_KIND_PATTERN),
    input: r['input'],
    worker: stringField(r, 'worker', 43, PEER_ID_PATTERN),
    issuedAt: intField(r, 'issuedAt', 0, Number.MAX_SAFE_INTEGER),
    expiresAt: intField(r, 'expiresAt', 0, Number.MAX_SAFE_INTEGER),
    nonce: stringField(r, 'nonce', 64),
    kid: stringField(r, 'kid', 16, /^[0-9a-f]{16}$/),
  }
}

// ---- payloads signed by a worker ------------------------------------------------------------------

export interface WorkerSigned {
  /** The sender; must equal the envelope's signer. */
  worker: string
  /** Sender's clock, checked against the receiver's within LIMITS.maxClockSkewMs. */
  at: number
  nonce: string
}

export function workerSigned(r: Rec): WorkerSigned {
  return {
    worker: stringField(r, 'worker', 43, PEER_ID_PATTERN),
    at: intField(r, 'at', 0, Number.MAX_SAFE_INTEGER),
    nonce: stringField(r, 'nonce', 64),
  }
}

/** Where a worker runs: the Node daemon or a browser tab (/contribute). */
export type WorkerRuntime = 'daemon' | 'browser'
export const WORKER_RUNTIMES: readonly WorkerRuntime[] = ['daemon', 'browser']

export interface WorkRequest extends WorkerSigned {
  type: 'work.request'
  v: 1
  /** How many units the worker has room for. */
  want: number
  /** Job kinds (`name@version`) the worker can run. */
  accepts: string[]
  /**
   * Replicas the worker holds now. When present, any other lease recorded for this worker was lost
   * in transit and is reissued at once.
   */
  holding?: string[]
  /** Where the worker runs (optional: older workers do not say); for operators' counts only. */
  runtime?: WorkerRuntime
}

export function parseWorkRequest(value: unknown): WorkRequest {
  const r = expectRecord(value, 'work.request')
  literal(r, 'type', 'work.request')
  literal(r, 'v', 1)
  return {
    type: 'work.request',
    v: 1,
    ...workerSigned(r),
    want: intField(r, 'want', 1, LIMITS.maxWant),
    accepts: stringList(r, 'accepts', 64, 40, JOB_KIND_PATTERN),
    ...(r['holding'] === undefined
      ? {}
      : { holding: stringList(r, 'holding', LIMITS.maxReplicaIds, 96, ID_PATTERN) }),
    ...(r['runtime'] === undefined ? {} : { runtime: runtimeField(r['runtime']) }),
  }
}

function runtimeField(v: unknown): WorkerRuntime {
  const rt = WORKER_RUNTIMES.find((x) => x === v)
  if (rt === undefined) throw new ProtocolError('runtime must be "daemon" or "browser"')
  return rt
}

export interface ResultPayload extends WorkerSigned {
  type: 'result'
  v: 1
  replicaId: string
  unitId: string
  jobId: string
  /** SHA-256 hex of `output`. */
  digest: string
  /** msgpack encoding of the job type's output for this unit. */
  output: Uint8Array
  computeMs: number
}

/** One unit's result: what a `result` carries, and each item of a `result.batch`. */
export type ResultItem = Pick<
  ResultPayload,
  'replicaId' | 'unitId' | 'jobId' | 'digest' | 'output' | 'computeMs'
>

function resultItem(r: Rec): ResultItem {
  return {
    replicaId: stringField(r, 'replicaId', 96, ID_PATTERN),
    unitId: stringField(r, 'unitId', 96, ID_PATTERN),
    jobId: stringField(r, 'jobId', 96, ID_PATTERN),
    digest: stringField(r, 'digest', 64, DIGEST_HEX),
    output: bytesField(r, 'output', LIMITS.maxOutputBytes, 1),
    computeMs: intField(r, 'computeMs', 0, 7 * 24 * 3600_000),
  }
}

export function parseResultPayload(value: unknown): ResultPayload {
  const r = expectRecord(value, 'result')
  literal(r, 'type', 'result')
  literal(r, 'v', 1)
  return { type: 'result', v: 1, ...workerSigned(r), ...resultItem(r) }
}

/**
 * Many results under one worker signature. The coordinator still checks each item on its own
 * (digest, ids, output shape, lease) and answers each: one bad item refuses only itself.
 */
export interface ResultBatch extends WorkerSigned {
  type: 'result.batch'
  v: 1
  results: ResultItem[]
}

export function parseResultBatch(value: unknown): ResultBatch {
  const r = expectRecord(value, 'result.batch')
  literal(r, 'type', 'result.batch')
  literal(r, 'v', 1)
  const results = arrayField(r, 'results', LIMITS.maxBatchResults).map((item, i) =>
    resultItem(expectRecord(item, `results[${i}]`)),
  )
  if (results.length === 0) throw new ProtocolError('results must not be empty')
  const bytes = results.reduce((n, x) => n + x.output.length, 0)
  if (results.length > 1 && bytes > LIMITS.maxBatchOutputBytes)
    throw new ProtocolError(
      `results carry ${bytes} output bytes; a batch may carry ${LIMITS.maxBatchOutputBytes}`,
    )
  return { type: 'result.batch', v: 1, ...workerSigned(r), results }
}

export interface LeaseRenew extends WorkerSigned {
  type: 'lease.renew'
  v: 1
  replicaIds: string[]
}

export interface LeaseRelease extends WorkerSigned {
  type: 'lease.release'
  v: 1
  replicaIds: string[]
  reason: string
}

export function parseLeaseRenew(value: unknown): LeaseRenew {
  const r = expectRecord(value, 'lease.renew')
  literal(r, 'type', 'lease.renew')
  literal(r, 'v', 1)
  return {
    type: 'lease.renew',
    v: 1,
    ...workerSigned(r),
    replicaIds: stringList(r, 'replicaIds', LIMITS.maxReplicaIds, 96, ID_PATTERN),
  }
}

export function parseLeaseRelease(value: unknown): LeaseRelease {
  const r = expectRecord(value, 'lease.release')
  literal(r, 'type', 'lease.release')
  literal(r, 'v', 1)
  return {
    type: 'lease.release',
    v: 1,
    ...workerSigned(r),
    replicaIds: stringList(r, 'replicaIds', LIMITS.maxReplicaIds, 96, ID_PATTERN),
    reason: stringField(r, 'reason', 200),
  }
}

/** Check that a worker-signed payload names its envelope's signer and is fresh. */
export function checkWorkerSigned(payload: WorkerSigned, signer: Uint8Array, now: number): void {
  if (payload.worker !== toBase64Url(signer))
    throw new ProtocolError('worker does not match the envelope signer')
  if (Math.abs(now - payload.at) > LIMITS.maxClockSkewMs)
    throw new ProtocolError('at is too far from the current time')
}

export interface ModuleGet extends WorkerSigned {
  type: 'module.get'
  v: 1
  /** SHA-256 hex of the module, as named by a signed unit. */
  hash: string
  /**
   * A replica the worker holds a lease on whose unit needs this module: coordinators serve data only
   * to a worker that needs it now.
   */
  replicaId: string
  /**
   * The worker can fetch content as chunks (it exchanges with peers): a module larger than one chunk
   * may then come back as the reference of its chunked form. Without it, the bytes.
   */
  chunked?: boolean
}

export function parseModuleGet(value: unknown): ModuleGet {
  const r = expectRecord(value, 'module.get')
  literal(r, 'type', 'module.get')
  literal(r, 'v', 1)
  const chunked = r['chunked']
  if (chunked !== undefined && typeof chunked !== 'boolean')
    throw new ProtocolError('chunked must be a boolean')
  return {
    type: 'module.get',
    v: 1,
    ...workerSigned(r),
    hash: stringField(r, 'hash', 64, DIGEST_HEX),
    replicaId: stringField(r, 'replicaId', 96, ID_PATTERN),
    ...(chunked === true ? { chunked } : {}),
  }
}

// ---- replies (unsigned; they travel on the requester's private inbox) ---------------------------

/** Why a grant carries fewer units than the worker asked for. */
export interface GrantLimit {
  /**
   * `rate`: the worker asked too often; nothing was granted, ask again after `retryAfterMs`.
   * `leases`: the worker holds as many leases as it may (`cap`, which grows with its validated work).
   */
  by: 'rate' | 'leases'
  /** Leases this worker may hold at once now. */
  cap: number
  /** Leases it holds now, this grant included. */
  holding: number
  /** The same in words, for logs. */
  message: string
}

export interface WorkGrant {
  type: 'work.grant'
  v: 1
  units: UnitEnvelope[]
  /** When no unit was granted: how long to wait before asking again. */
  retryAfterMs: number
  /** Present when a rule held the grant back (not when there was simply no work). */
  limit?: GrantLimit
}

function parseGrantLimit(value: unknown): GrantLimit {
  const r = expectRecord(value, 'limit')
  const by = r['by']
  if (by !== 'rate' && by !== 'leases') throw new ProtocolError('limit.by must be rate or leases')
  return {
    by,
    cap: intField(r, 'cap', 0, LIMITS.maxReplicaIds),
    holding: intField(r, 'holding', 0, 100_000),
    message: stringField(r, 'message', 200),
  }
}

export function parseWorkGrant(value: unknown): WorkGrant {
  const r = expectRecord(value, 'work.grant')
  literal(r, 'type', 'work.grant')
  literal(r, 'v', 1)
  return {
    type: 'work.grant',
    v: 1,
    units: arrayField(r, 'units', LIMITS.maxWant).map((u) => parseUnitEnvelope(u, LIMITS.maxUnitBytes)),
    retryAfterMs: intField(r, 'retryAfterMs', 0, 600_000),
    ...(r['limit'] === undefined ? {} : { limit: parseGrantLimit(r['limit']) }),
  }
}

export type ResultStatus = 'accepted' | 'duplicate' | 'rejected'

export interface ResultAck {
  type: 'result.ack'
  v: 1
  status: ResultStatus
  reason?: string
}

export function parseResultAck(value: unknown): ResultAck {
  const r = expectRecord(value, 'result.ack')
  literal(r, 'type', 'result.ack')
  literal(r, 'v', 1)
  const status = r['status']
  if (status !== 'accepted' && status !== 'duplicate' && status !== 'rejected') {
    throw new ProtocolError('status must be accepted, duplicate or rejected')
  }
  const ack: ResultAck = { type: 'result.ack', v: 1, status }
  if (r['reason'] !== undefined) ack.reason = stringField(r, 'reason', 500)
  return ack
}

/** The answer to a `result.batch`: one ack per result, in the batch's order. */
export interface ResultAcks {
  type: 'result.acks'
  v: 1
  acks: ResultAck[]
}

export function parseResultAcks(value: unknown): ResultAcks {
  const r = expectRecord(value, 'result.acks')
  literal(r, 'type', 'result.acks')
  literal(r, 'v', 1)
  return {
    type: 'result.acks',
    v: 1,
    acks: arrayField(r, 'acks', LIMITS.maxBatchResults).map(parseResultAck),
  }
}

export interface LeaseRenewed {
  type: 'lease.renewed'
  v: 1
  /** New deadline of each replica still held. */
  expiresAt: Record<string, number>
  /** Replicas the worker no longer holds (expired, reissued, job cancelled): stop computing them. */
  lost: string[]
}

export function parseLeaseRenewed(value: unknown): LeaseRenewed {
  const r = expectRecord(value, 'lease.renewed')
  literal(r, 'type', 'lease.renewed')
  literal(r, 'v', 1)
  const exp = expectRecord(r['expiresAt'], 'expiresAt')
  const expiresAt: Record<string, number> = {}
  for (const k of Object.keys(exp).slice(0, LIMITS.maxReplicaIds))
    expiresAt[k] = intField(exp, k, 0, Number.MAX_SAFE_INTEGER)
  return {
    type: 'lease.renewed',
    v: 1,
    expiresAt,
    lost: stringList(r, 'lost', LIMITS.maxReplicaIds, 96, ID_PATTERN),
  }
}

export interface LeaseReleased {
  type: 'lease.released'
  v: 1
  released: number
}

export function parseLeaseReleased(value: unknown): LeaseReleased {
  const r = expectRecord(value, 'lease.released')
  literal(r, 'type', 'lease.released')
  literal(r, 'v', 1)
  return { type: 'lease.released', v: 1, released: intField(r, 'released', 0, LIMITS.maxReplicaIds) }
}

/**
 * A module's bytes or, for a module larger than one chunk asked for with `chunked`, the reference
 * `{root, size}` of its chunked form (fetched like a dataset, from peers first): exactly one of the
 * two. The requester checks the SHA-256 of the bytes it ends up with against the hash it asked for.
 */
export type ModuleReply = { type: 'module'; v: 1; hash: string } & ({ bytes: Uint8Array } | ContentRef)

export function parseModuleReply(value: unknown): ModuleReply {
  const r = expectRecord(value, 'module')
  literal(r, 'type', 'module')
  literal(r, 'v', 1)
  const hash = stringField(r, 'hash', 64, DIGEST_HEX)
  const bytes = r['bytes'] !== undefined
  if (bytes === (r['root'] !== undefined || r['size'] !== undefined))
    throw new ProtocolError('module must carry either bytes or a root and a size')
  if (bytes) return { type: 'module', v: 1, hash, bytes: bytesField(r, 'bytes', LIMITS.maxModuleBytes, 8) }
  return {
    type: 'module',
    v: 1,
    hash,
    root: stringField(r, 'root', 64, DIGEST_HEX),
    size: intField(r, 'size', 8, LIMITS.maxModuleBytes),
  }
}

/**
 * A request that could not be served. `bad-request`, `bad-signature`: the requester should not retry
 * the same bytes. `internal`: the coordinator failed or was busy. `over-budget`: the requester's
 * egress budget is spent; it may ask again after `retryAfterMs`.
 */
export interface ErrorReply {
  type: 'error'
  v: 1
  code: 'bad-request' | 'bad-signature' | 'internal' | 'over-budget'
  message: string
  /** With `over-budget`: how long until the budget allows the request again. */
  retryAfterMs?: number
}

export function isErrorReply(value: unknown): value is ErrorReply {
  return typeof value === 'object' && value !== null && (value as Rec)['type'] === 'error'
}
