// The scheduler: hands replicas to workers that ask (pull, as in BOINC), extends and takes back
// leases, and reissues the replicas whose leases expired. Lease accounting (docs/security.md): each
// worker's work requests are rate-limited and its leases capped, a replica's lease has a lifetime
// bound, and a lease that ends without a result is charged to the worker, not to the unit.
import type { NatsConnection } from '@nats-io/nats-core'
import {
  checkWorkerSigned,
  errorFields,
  LIMITS,
  parseEnvelope,
  parseLeaseRelease,
  parseLeaseRenew,
  parseWorkRequest,
  ProtocolError,
  type LeaseReleased,
  type LeaseRenewed,
  type GrantLimit,
  type Logger,
  type Subjects,
  type WorkGrant,
  type WorkerRuntime,
} from '../shared/index.js'
import type { Counters } from './counters.js'
import { BannedError, serve, type RequestContext, type Service, type Timer } from './nats-service.js'
import type { CoordinatorTuning } from './options.js'
import { every, type Periodic } from './periodic.js'
import { rewakePolicy, wakesFor } from './wake-policy.js'
import type { Store } from './store/store.js'
import type { UnitSigner } from './unit-signer.js'

export interface SchedulerInit {
  nats: NatsConnection
  store: Store
  signer: UnitSigner
  subjects: Subjects
  tuning: CoordinatorTuning
  counters: Counters
  log: Logger
  /** Job kinds this coordinator can plan and validate. */
  kinds: ReadonlySet<string>
  /** Told each work request's worker and runtime (for operators' counts). */
  onWorkRequest?: (worker: string, runtime: WorkerRuntime | undefined) => void
  /** Lease latency: a work request's arrival to its grant being sent. */
  leaseLatency?: Timer
  /** Identities that asked for work lately, all coordinators together (sizes the idle backoff's cap). */
  online?: () => Promise<number>
}

export interface Scheduler {
  start(): void
  stop(): Promise<void>
  /**
   * Tell waiting workers that `replicas` replicas became ready: one wake-up per replica (at most
   * `wakeMax`, summed over one tick), each to one volunteer of the queue group.
   */
  announceWork(replicas: number): void
  /** Expire overdue leases now (also runs on a timer). */
  reap(): Promise<number>
}

/** A signed request's nonce is remembered past the clock window in which its `at` is accepted. */
const NONCE_TTL_MS = 2 * LIMITS.maxClockSkewMs

const replayed = (): ProtocolError => new ProtocolError('request replayed: this nonce was used before')
const ENVELOPE_OVERHEAD = 4096

/** How often the crowd's size (`online`) is read again. */
const CROWD_REFRESH_MS = 10_000

/**
 * The longest wait of an idle worker: long enough that the idle crowd asks about
 * `idleRequestsPerSecond` times a second in all, within [idleRetryMs, idleRetryMaxMs]. A small
 * crowd keeps asking often (it costs nothing and finds reissued replicas at once); a large one
 * waits up to minutes.
 */
export function idleCapMs(crowd: number, perSecond: number, first: number, max: number): number {
  // The worker asking is one of the crowd, counted or not yet.
  return Math.min(max, Math.max(first, Math.ceil((Math.max(1, crowd) / perSecond) * 1000)))
}

/**
 * The wait an empty grant asks for after `idle` empty grants in a row: `first` doubled per empty
 * grant after the first, at most `max`, drawn between half of that and all of it ("equal jitter"),
 * so an idle crowd spreads its requests instead of asking in step. The first wait is at least a
 * sixteenth of `max`: a crowd whose cap is minutes long starts its climb at seconds, not at one,
 * and reaches the cap in four doublings (work that comes meanwhile wakes it, see `wakesFor`).
 */
export function idleRetryMs(idle: number, first: number, max: number, random = Math.random): number {
  max = Math.max(first, max)
  first = Math.max(first, Math.floor(max / 16))
  const ceiling = Math.min(max, first * 2 ** Math.min(30, Math.max(0, idle - 1)))
  return Math.round(ceiling / 2 + random() * (ceiling / 2))
}

/** Weight of the newest grant in the average units per grant. */
const PER_GRANT_ALPHA = 0.1

export function createScheduler(init: SchedulerInit): Scheduler {
  const { nats, store, signer, subjects, tuning, counters, log } = init
  const services: Service[] = []
  let reaper: Periodic | undefined
  let crowdReader: Periodic | undefined
  // Until the first read: as large a crowd as the cap allows.
  let crowd = Number.POSITIVE_INFINITY
  const readCrowd = async (): Promise<void> => {
    if (init.online !== undefined) crowd = await init.online()
  }
  let announcePending = 0
  /**
   * Units per grant that carried any, averaged (EWMA): how many replicas one wake-up finds takers
   * for. Until grants say otherwise, what a new identity may hold (the lease cap's base).
   */
  let perGrant = tuning.leaseCapBase

  const wake = (n: number): void => {
    if (nats.isClosed()) return
    for (let i = 0; i < n; i++) nats.publish(subjects.workAvailable)
  }

  const announceWork = (replicas: number): void => {
    if (!(replicas > 0)) return
    const first = announcePending === 0
    announcePending += replicas
    if (!first) return
    queueMicrotask(() => {
      const n = wakesFor(announcePending, perGrant, tuning.wakeMax)
      announcePending = 0
      wake(n)
      counters.wakeUpsSent += n
    })
  }

  // Replicas still ready a tick later are woken for again (see rewakePolicy).
  let rewaker: Periodic | undefined
  const rewakes = rewakePolicy()
  const rewake = async (): Promise<void> => {
    const n = rewakes.next(await store.readyCount(), perGrant, tuning.wakeMax)
    wake(n)
    counters.rewakesSent += n
  }

  /**
   * A worker's signed request, opened and checked. A signed request is good once: a copy replayed by
   * someone who saw it (a renewal, a release, a work request whose `holding` would give back newer
   * leases) is refused. A work request's nonce is recorded by the WORK script itself, in the same
   * round trip (`nonceChecked: false` here).
   */
  const workerEnvelope = async <T extends { worker: string; at: number; nonce: string }>(
    value: unknown,
    ctx: RequestContext,
    kind: 'work.request' | 'lease.renew' | 'lease.release',
    parse: (v: unknown) => T,
    nonceChecked = true,
  ): Promise<T> => {
    const env = parseEnvelope(value, kind, ENVELOPE_OVERHEAD + LIMITS.maxReplicaIds * 100)
    const payload = parse(await ctx.open(env))
    checkWorkerSigned(payload, env.signer, Date.now())
    if (nonceChecked && !(await store.useNonce(payload.worker, payload.nonce, NONCE_TTL_MS))) throw replayed()
    return payload
  }

  const onWorkRequest = async (value: unknown, ctx: RequestContext): Promise<WorkGrant> => {
    const req = await workerEnvelope(value, ctx, 'work.request', parseWorkRequest, false)
    init.onWorkRequest?.(req.worker, req.runtime)
    const accepts = req.accepts.filter((k) => init.kinds.has(k))
    const now = Date.now()
    const out = await store.work(
      req.worker,
      accepts.length === 0 ? 0 : req.want,
      accepts,
      req.holding,
      tuning,
      now,
      { value: req.nonce, ttlMs: NONCE_TTL_MS },
    )
    if (out.status === 'replayed') throw replayed()
    if (out.status === 'banned')
      throw new BannedError('this identity was caught with a wrong result and gets no more work')
    if (out.reclaimed > 0) {
      counters.leasesReleased += out.reclaimed
      log.info('leases lost in transit taken back', { worker: req.worker, reclaimed: out.reclaimed })
      announceWork(out.reclaimed)
    }
    let limit: GrantLimit | undefined
    if (out.status === 'rate') {
      counters.workRequestsLimited++
      limit = {
        by: 'rate',
        cap: out.cap,
        holding: out.holding,
        message: `too many work requests: ask again in ${out.retryAfterMs} ms`,
      }
    } else if (out.status === 'leases') {
      counters.leaseCapReached++
      limit = {
        by: 'leases',
        cap: out.cap,
        holding: out.holding,
        message: `this worker may hold ${out.cap} leases at once (more as its results are validated)`,
      }
    }
    const leased = out.leased
    if (leased.length > 0) perGrant += PER_GRANT_ALPHA * (leased.length - perGrant)
    if (out.idle > 0) counters.emptyGrants++
    counters.unitsLeased += leased.length
    const units = await signer.signAll(leased, req.worker, now)
    if (leased.length > 0) log.debug('leased', { worker: req.worker, n: leased.length })
    // With nothing leased: come back when a replica held back by its unit's spread is free, or after
    // a wait that grows with the empty grants in a row (idleRetryMs), whichever comes first.
    const cap = idleCapMs(crowd, tuning.idleRequestsPerSecond, tuning.idleRetryMs, tuning.idleRetryMaxMs)
    const idleWait = (): number => idleRetryMs(out.idle, tuning.idleRetryMs, cap)
    const retryAfterMs =
      out.status === 'rate'
        ? out.retryAfterMs
        : units.length > 0
          ? 0
          : out.retryAfterMs > 0
            ? Math.min(out.retryAfterMs, idleWait())
            : idleWait()
    return { type: 'work.grant', v: 1, units, retryAfterMs, ...(limit === undefined ? {} : { limit }) }
  }

  const onRenew = async (value: unknown, ctx: RequestContext): Promise<LeaseRenewed> => {
    const req = await workerEnvelope(value, ctx, 'lease.renew', parseLeaseRenew)
    const { expiresAt, lost, pastLifetime } = await store.renew(
      req.worker,
      req.replicaIds,
      tuning,
      Date.now(),
    )
    if (pastLifetime > 0) {
      counters.renewalsRefused += pastLifetime
      log.info('renewal past the lease lifetime refused; replicas reissued', {
        worker: req.worker,
        n: pastLifetime,
      })
      announceWork(pastLifetime)
    }
    return { type: 'lease.renewed', v: 1, expiresAt, lost }
  }

  const onRelease = async (value: unknown, ctx: RequestContext): Promise<LeaseReleased> => {
    const req = await workerEnvelope(value, ctx, 'lease.release', parseLeaseRelease)
    const released = await store.release(req.worker, req.replicaIds, tuning.maxWorkersPerUnit, Date.now())
    counters.leasesReleased += released
    if (released > 0) {
      log.info('leases handed back', { worker: req.worker, released, reason: req.reason })
      announceWork(released)
    }
    return { type: 'lease.released', v: 1, released }
  }

  const reap = async (): Promise<number> => {
    const n = await store.expire(Date.now(), 500, tuning.maxWorkersPerUnit)
    if (n > 0) {
      counters.leasesExpired += n
      log.info('leases expired; replicas reissued', { n })
      announceWork(n)
    }
    return n
  }

  return {
    announceWork,
    reap,
    start() {
      const common = { nats, counters, log, maxInflight: tuning.maxInflight }
      services.push(
        serve({
          ...common,
          subject: subjects.workRequest,
          handler: onWorkRequest,
          maxBytes: 64 * 1024,
          ...(init.leaseLatency === undefined ? {} : { timed: init.leaseLatency }),
        }),
        serve({ ...common, subject: subjects.leaseRenew, handler: onRenew, maxBytes: 64 * 1024 }),
        serve({ ...common, subject: subjects.leaseRelease, handler: onRelease, maxBytes: 64 * 1024 }),
      )
      reaper = every(tuning.reapIntervalMs, reap, (err) => log.warn('lease reaper failed', errorFields(err)))
      rewaker = every(tuning.idleRetryMs, rewake, (err) =>
        log.warn('could not count ready replicas', errorFields(err)),
      )
      if (init.online !== undefined) {
        readCrowd().catch((err: unknown) => log.warn('could not count online workers', errorFields(err)))
        crowdReader = every(CROWD_REFRESH_MS, readCrowd, (err) =>
          log.warn('could not count online workers', errorFields(err)),
        )
      }
    },
    async stop() {
      const reaped = Promise.all([reaper?.stop(), crowdReader?.stop(), rewaker?.stop()])
      await Promise.all(services.map((s) => s.stop(tuning.stopTimeoutMs)))
      services.length = 0
      await reaped
    },
  }
}
