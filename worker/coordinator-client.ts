// The worker's side of the protocol: signed requests to the coordinators' queue group, each with a
// fresh nonce and timestamp, answered on this worker's own inbox. Data requests (`module.get`,
// `chunk.get`) also name a replica this worker holds whose unit needs the data.
import type { NatsConnection } from '@nats-io/nats-core'
import {
  CohortError,
  decode,
  encode,
  isErrorReply,
  parseChunkReply,
  parseLeaseClaimed,
  parseLeaseReleased,
  parseLeaseRenewed,
  parseModuleReply,
  parseResultAck,
  parseResultAcks,
  ProtocolError,
  parseWorkGrant,
  randomId,
  seal,
  type ContentRef,
  type Identity,
  type LeaseClaimed,
  type LeaseReleased,
  type SignedEnvelope,
  type LeaseRenewed,
  type ResultAck,
  type ResultItem,
  type SignedKind,
  type Subjects,
  type WorkGrant,
  type WorkerRuntime,
} from '../shared/index.js'

/** The coordinator answered, but refused the request itself (do not retry the same request). */
export class RequestRefusedError extends CohortError {
  override name = 'RequestRefusedError'
}

/** The coordinator was busy or failed on its side: the same request may succeed later. */
export class CoordinatorUnavailableError extends CohortError {
  override name = 'CoordinatorUnavailableError'
}

/** The coordinator's egress budget for this worker is spent: ask again after `retryAfterMs`. */
export class OverBudgetError extends CoordinatorUnavailableError {
  override name = 'OverBudgetError'
  constructor(
    message: string,
    readonly retryAfterMs: number,
  ) {
    super(message)
  }
}

/** What a data request is for: a module by hash, or content (a dataset's root) by root. */
export type DataNeed = { module: string } | { root: string }

export interface CoordinatorClientInit {
  nats: NatsConnection
  identity: Identity
  subjects: Subjects
  /** Per request. Default 5000 ms. */
  timeoutMs?: number
  /**
   * A replica this worker holds whose unit needs the module or content: coordinators serve data only
   * for such a lease, named in the request. Undefined when none does (the request is then not sent).
   * Without it, `getModule` and `getChunk` are refused here.
   */
  leaseFor?: (need: DataNeed) => string | undefined
  /** Where this worker runs, told in work requests (operators count workers by runtime). */
  runtime?: WorkerRuntime
}

export type ResultFields = ResultItem

export interface CoordinatorClient {
  /** `holding`: the replicas this worker holds now (lets the coordinator take back lost grants). */
  requestWork(want: number, accepts: string[], holding?: string[]): Promise<WorkGrant>
  submitResult(r: ResultFields): Promise<ResultAck>
  /**
   * Results under one signature (`result.batch`, at most LIMITS.maxBatchResults, one result alone
   * when it is large): one ack per result, in order.
   */
  submitResults(rs: ResultFields[]): Promise<ResultAck[]>
  renew(replicaIds: string[]): Promise<LeaseRenewed>
  release(replicaIds: string[], reason: string): Promise<LeaseReleased>
  /**
   * A signed, encoded `lease.release` to publish later without awaiting anything (a browser tab
   * being closed cannot wait for a signature). Valid while its timestamp is within the clock window.
   */
  sealRelease(replicaIds: string[], reason: string): Promise<Uint8Array>
  /**
   * The bytes a coordinator holds for module `hash`; with `chunked` (the worker can fetch chunks), a
   * module larger than one chunk comes as the reference of its chunked form instead. Unchecked: the
   * module cache checks what it finally gets.
   */
  getModule(hash: string, chunked?: boolean): Promise<Uint8Array | ContentRef>
  /**
   * A content chunk or manifest by SHA-256 (unchecked: the fetcher checks it); `root` names the
   * content it belongs to (equal to `hash` for the manifest).
   */
  getChunk(hash: string, root: string): Promise<Uint8Array>
  /** Take over leases a peer transferred to this worker; returns them re-signed for it. */
  claim(transfer: SignedEnvelope): Promise<LeaseClaimed>
}

const MAX_MODULE_ROOTS = 1024

export function createCoordinatorClient(init: CoordinatorClientInit): CoordinatorClient {
  const { nats, identity, subjects } = init
  const timeout = init.timeoutMs ?? 5_000

  const sealed = async (kind: SignedKind, payload: object): Promise<Uint8Array> =>
    encode(await seal(kind, { ...payload, worker: identity.id, at: Date.now(), nonce: randomId() }, identity))

  /** Roots of modules' chunked forms, by root: their chunks are needed by units that use the module. */
  const moduleRoots = new Map<string, string>()
  const replicaFor = (need: DataNeed, what: string): string => {
    const replicaId = init.leaseFor?.(need)
    if (replicaId === undefined)
      throw new RequestRefusedError(`no lease this worker holds needs ${what}: not asked for`)
    return replicaId
  }

  const call = async <T>(
    subject: string,
    kind: SignedKind,
    payload: object,
    parse: (v: unknown) => T,
  ): Promise<T> => {
    const msg = await nats.request(subject, await sealed(kind, payload), { timeout })
    const value = decode(msg.data)
    if (isErrorReply(value)) {
      if (value.code === 'internal')
        throw new CoordinatorUnavailableError(`coordinator could not serve ${kind}: ${value.message}`)
      if (value.code === 'over-budget')
        throw new OverBudgetError(
          `coordinator refused ${kind}: ${value.message}`,
          value.retryAfterMs ?? 1_000,
        )
      throw new RequestRefusedError(`coordinator refused ${kind}: ${value.message}`)
    }
    return parse(value)
  }

  const submitResult = (r: ResultFields): Promise<ResultAck> =>
    call(subjects.resultSubmit, 'result', { type: 'result', v: 1, ...r }, parseResultAck)

  return {
    requestWork: (want, accepts, holding) =>
      call(
        subjects.workRequest,
        'work.request',
        {
          type: 'work.request',
          v: 1,
          want,
          accepts,
          ...(holding === undefined ? {} : { holding }),
          ...(init.runtime === undefined ? {} : { runtime: init.runtime }),
        },
        parseWorkGrant,
      ),
    submitResult,
    async submitResults(rs) {
      if (rs.length === 1) return [await submitResult(rs[0]!)]
      const payload = { type: 'result.batch', v: 1, results: rs }
      const { acks } = await call(subjects.resultSubmit, 'result.batch', payload, parseResultAcks)
      if (acks.length !== rs.length)
        throw new ProtocolError(`coordinator answered ${acks.length} of ${rs.length} results`)
      return acks
    },
    renew: (replicaIds) =>
      call(subjects.leaseRenew, 'lease.renew', { type: 'lease.renew', v: 1, replicaIds }, parseLeaseRenewed),
    release: (replicaIds, reason) =>
      call(
        subjects.leaseRelease,
        'lease.release',
        { type: 'lease.release', v: 1, replicaIds, reason },
        parseLeaseReleased,
      ),
    async getModule(hash, chunked = false) {
      const replicaId = replicaFor({ module: hash }, `module ${hash}`)
      const req = { type: 'module.get', v: 1, hash, replicaId, ...(chunked ? { chunked } : {}) }
      const reply = await call(subjects.moduleGet, 'module.get', req, parseModuleReply)
      if ('bytes' in reply) return reply.bytes
      if (moduleRoots.size >= MAX_MODULE_ROOTS) moduleRoots.clear()
      moduleRoots.set(reply.root, hash)
      return { root: reply.root, size: reply.size }
    },
    async getChunk(hash, root) {
      const module = moduleRoots.get(root)
      const replicaId = replicaFor(module === undefined ? { root } : { module }, `content ${root}`)
      const req = { type: 'chunk.get', v: 1, hash, root, replicaId }
      return (await call(subjects.chunkGet, 'chunk.get', req, parseChunkReply)).bytes
    },
    claim: (transfer) =>
      call(subjects.leaseClaim, 'lease.claim', { type: 'lease.claim', v: 1, transfer }, parseLeaseClaimed),
    sealRelease: (replicaIds, reason) =>
      sealed('lease.release', { type: 'lease.release', v: 1, replicaIds, reason }),
  }
}
