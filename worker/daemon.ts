// The volunteer's worker daemon: its lifecycle (start, pause, resume, stop with drain) and the wiring
// of its parts, each in worker/daemon/: the units held and their states, unit intake, the dispatcher
// that runs them, the result submitter, the lease keeper, the work filler and the shedder that hands
// units to peers or back. No `node:` imports: the browser contributor runs this same daemon with a
// Web Worker runner and a WebSocket NATS connection.
import type { NatsConnection, Subscription } from '@nats-io/nats-core'
import {
  Emitter,
  errorFields,
  subjectsFor,
  WORK_AVAILABLE_QUEUE,
  type AnyJobType,
  type Identity,
  type Logger,
  type ResultAck,
  type UnitPayload,
  type WorkerRuntime,
} from '../shared/index.js'
import { createCoordinatorClient, type CoordinatorClient } from './coordinator-client.js'
import { createDispatcher } from './daemon/dispatcher.js'
import { createHeldUnits } from './daemon/held-units.js'
import { runnableJobTypes } from './daemon/job-types.js'
import { createLeaseKeeper } from './daemon/lease-keeper.js'
import { createResultSubmitter, sendBatches } from './daemon/result-submitter.js'
import { createShedder } from './daemon/shedder.js'
import { createUnitIntake } from './daemon/unit-intake.js'
import { createWorkFiller } from './daemon/work-filler.js'
import { createModuleCache } from './module-cache.js'
import type { DaemonGuest, GuestHost } from './policy/guest-hooks.js'
import { restoreUnits } from './policy/restore.js'
import type { PeerStatus } from './policy/status.js'
import type { Runner } from './runner.js'
import { withUnitResources } from './unit-resources.js'
import type { TrustedKeys } from './unit-verifier.js'
import { createWake } from './wake.js'
import { createPeering, type PeerOptions, type Peering } from './peer/peering.js'

export interface WorkerDaemonInit {
  nats: NatsConnection
  identity: Identity
  /** Coordinator keys whose units this worker runs. */
  trusted: TrustedKeys
  runner: Runner
  /** Job types to take units of; each must be one `runner.kinds` holds (else a `ConfigError` here). */
  jobTypes: Iterable<AnyJobType>
  log: Logger
  /** NATS subject prefix. Default `cohort`. */
  subjectPrefix?: string
  /**
   * Units held beyond those running, so a thread never waits on the network. Default: enough for
   * `bufferMs` of work at the measured time per unit, at least one per thread (read again at every
   * request, so it follows `runner.threads` and the units' size).
   */
  bufferUnits?: number
  /** Work held beyond the running units when `bufferUnits` is not set, in ms per thread. Default 500. */
  bufferMs?: number
  /** Per NATS request. Default 5000 ms. */
  requestTimeoutMs?: number
  /** Where this worker runs, told to coordinators in work requests. Default `daemon`. */
  runtime?: WorkerRuntime
  /** On stop, how long running units may take to finish before they are handed back. Default 30000 ms. */
  drainTimeoutMs?: number
  /** The volunteer's policy (worker/policy): idle pausing, work cap, checkpoints. Default: none. */
  guest?: DaemonGuest
  /** Peer exchange: handoff, stealing and content chunks between workers. Default: on; false turns it off. */
  peers?: PeerOptions | false
}

export interface WorkerStats {
  held: number
  running: number
  unitsDone: number
  unitsRefused: number
  unitsFailed: number
  resultsAccepted: number
  resultsDuplicate: number
  resultsRejected: number
  leasesLost: number
  computeMs: number
}

/** Typed events; one line each. */
export type WorkerEvents = {
  /** A unit failed verification and was not run. */
  refused: [reason: string]
  /** The coordinator answered a submitted result. */
  result: [unitId: string, ack: ResultAck]
  /** A unit started computing. */
  started: [unit: UnitPayload]
  /** The coordinator reported leases this worker no longer holds. */
  lost: [replicaIds: string[]]
  /** The set of leases held (buffered, running or submitting) changed. */
  held: [replicaIds: string[]]
}

export interface StopOptions {
  /** Overrides `WorkerDaemonInit.drainTimeoutMs`; 0 aborts running units and hands them back at once. */
  drainTimeoutMs?: number
}

export interface WorkerDaemon extends Emitter<WorkerEvents> {
  readonly id: string
  readonly stats: WorkerStats
  /**
   * The peer overlay, content store and fetcher, and unit exchange. With peer exchange off the overlay
   * never starts: content then comes from the coordinators only, and no unit moves between peers.
   */
  readonly peering: Peering
  /** True between `pause()` and `resume()`. */
  readonly paused: boolean
  start(): void
  /**
   * Ask for no more work and start no unit: buffered units are handed back at once, running ones
   * finish and are submitted. May be called before `start()`.
   */
  pause(): Promise<void>
  /** Ask for work and start units again. */
  resume(): void
  stop(options?: StopOptions): Promise<void>
}

export function createWorkerDaemon(init: WorkerDaemonInit): WorkerDaemon {
  const { log, guest } = init
  const subjects = subjectsFor(init.subjectPrefix ?? 'cohort')
  // Fails here, before any unit is taken, when the runner cannot run one of the job types.
  const jobTypes = runnableJobTypes(init.jobTypes, init.runner)
  const accepts = [...jobTypes.keys()]
  // The runner's thread count may change while the daemon runs (the browser's threads slider).
  const threads = (): number => init.runner.threads
  const drainTimeoutMs = init.drainTimeoutMs ?? 30_000
  const peersOn = init.peers !== false
  const stats: WorkerStats = {
    held: 0,
    running: 0,
    unitsDone: 0,
    unitsRefused: 0,
    unitsFailed: 0,
    resultsAccepted: 0,
    resultsDuplicate: 0,
    resultsRejected: 0,
    leasesLost: 0,
    computeMs: 0,
  }
  const emitter = new Emitter<WorkerEvents>()
  const wake = createWake()
  /** Only the coordinators' `work.available`: ends the wait an empty grant asked for. */
  const announced = createWake()
  let stopping = false
  // Paused by the volunteer (`pause()`), or by the policy after a long idle pause (`GuestHost.pause`):
  // either keeps the daemon from asking for work and starting units.
  let paused = false
  let policyPaused = false
  const holding = (): boolean => paused || policyPaused
  let fillLoop: Promise<void> | undefined
  let availableSub: Subscription | undefined
  const mayStart = (): boolean => !stopping && !holding() && guest?.mayStart() !== false

  const held = createHeldUnits({
    stats,
    onChange(ids) {
      guest?.onHeld(ids)
      emitter.emit('held', ids)
    },
  })
  const client: CoordinatorClient = createCoordinatorClient({
    nats: init.nats,
    identity: init.identity,
    subjects,
    leaseFor: (need) => intake.leaseFor(need),
    runtime: init.runtime ?? 'daemon',
    ...(init.requestTimeoutMs === undefined ? {} : { timeoutMs: init.requestTimeoutMs }),
  })
  // Modules named by signed units, hash-checked; unit time limits. Large modules come as chunks from
  // peers, whole from a coordinator when peer exchange is off.
  const modules = createModuleCache({
    fetch: (hash, chunked) => client.getModule(hash, chunked),
    peering: () => (peersOn ? peering : undefined),
  })
  const runner = withUnitResources(init.runner, {
    jobTypes,
    modules,
    content: async (ref, signal) => {
      const got = await peering.fetcher.resolve(ref, signal)
      return { bytes: got.data, release: peering.content.pin(ref.root) }
    },
  })
  const submitter = createResultSubmitter({
    send: sendBatches(client),
    stats,
    log,
    onAck(unitId, ack) {
      guest?.onResult(unitId, ack)
      emitter.emit('result', unitId, ack)
    },
  })
  const dispatcher = createDispatcher({
    held,
    runner,
    threads,
    mayStart,
    guest,
    submit: (h, outcome) => submitter.submit(h, outcome),
    release: (ids, reason) => client.release(ids, reason),
    stats,
    log,
    onStarted: (unit) => emitter.emit('started', unit),
    onFreed: () => wake.notify(),
  })
  const keeper = createLeaseKeeper({
    held,
    client,
    stats,
    log,
    onLost(ids) {
      emitter.emit('lost', ids)
      wake.notify()
    },
    onLate: (late) => shedder.overload(late),
    perUnitMs: () => dispatcher.perUnitMs(),
    threads,
    judging: () => peersOn && !stopping && !holding(),
  })
  const peering: Peering = createPeering({
    nats: init.nats,
    identity: init.identity,
    subjects,
    trusted: init.trusted,
    jobTypes,
    client,
    log,
    options: init.peers === false ? {} : (init.peers ?? {}),
    host: {
      threads,
      running: () => held.count('running'),
      buffered: () => held.count('buffered'),
      accepting: mayStart,
      room: () => filler.room(),
      accepts: () => accepts,
      take: (want, kinds, avoid) => shedder.take(want, kinds, avoid),
      restore: (ids) => shedder.restore(ids),
      forget: (ids) => shedder.forget(ids),
      reserve: (units) => held.reserve(units),
      adopt: (units) => intake.accept(units, true),
    },
  })
  const shedder = createShedder({
    held,
    client,
    exchange: peersOn ? peering.exchange : undefined,
    peersHaveRoom: () => peering.overlay.peers().some((p) => p.state.free > 0),
    guest,
    log,
    onReturned: () => dispatcher.dispatch(),
    onLeft: () => wake.notify(),
  })
  const intake = createUnitIntake({
    held,
    trusted: init.trusted,
    self: init.identity.id,
    jobTypes,
    guest,
    fetchContent: (ref) => peering.fetcher.resolve(ref),
    stats,
    log,
    onRefused: (reason) => emitter.emit('refused', reason),
    onAdded() {
      dispatcher.dispatch()
      keeper.schedule()
    },
  })
  const filler = createWorkFiller({
    held,
    client,
    wake,
    announced,
    accepts,
    threads,
    bufferUnits: init.bufferUnits,
    bufferMs: init.bufferMs,
    perUnitMs: () => dispatcher.perUnitMs(),
    guest,
    paused: holding,
    stopping: () => stopping,
    accept: (units) => intake.accept(units),
    onPausedGrant: () => shedder.shed(held.inState('buffered'), 'worker paused'),
    steal:
      init.peers === false || init.peers?.steal === false
        ? undefined
        : (want) => peering.exchange.steal(want),
    log,
  })

  /** Units an earlier run checkpointed (policy only): renewed, then run from their checkpoint. */
  const restore = async (): Promise<void> => {
    if (guest === undefined) return
    const restored = await restoreUnits({
      guest,
      client,
      trusted: init.trusted,
      self: init.identity.id,
      jobTypes,
      log,
    }).catch((err: unknown) => {
      log.warn('could not restore saved units', errorFields(err))
      return []
    })
    intake.restored(restored)
  }

  async function hold(by: 'volunteer' | 'policy'): Promise<void> {
    if (stopping || (by === 'volunteer' ? paused : policyPaused)) return
    const was = holding()
    if (by === 'volunteer') paused = true
    else policyPaused = true
    log.info('worker paused', { by, running: stats.running })
    if (was) return
    peering.overlay.announceSoon()
    await shedder.shed(held.inState('buffered'), 'worker paused')
  }

  function release(by: 'volunteer' | 'policy'): void {
    if (stopping || !(by === 'volunteer' ? paused : policyPaused)) return
    if (by === 'volunteer') paused = false
    else policyPaused = false
    if (holding()) return
    log.info('worker resumed', { by })
    wake.notify()
    dispatcher.dispatch()
  }

  const host: GuestHost = {
    id: init.identity.id,
    counts: () => ({
      ...stats,
      peers: peerCounts(peering),
      mode: stopping ? 'finishing' : paused ? 'paused' : 'running',
    }),
    pause: () => hold('policy'),
    resume: () => release('policy'),
  }

  const daemon = Object.assign(emitter, {
    id: init.identity.id,
    stats,
    peering,
    start(): void {
      // One of the volunteers' queue group: each wake-up the coordinators send reaches one volunteer.
      availableSub = init.nats.subscribe(subjects.workAvailable, {
        queue: WORK_AVAILABLE_QUEUE,
        callback: () => {
          announced.notify()
          wake.notify()
        },
      })
      guest?.onChange(() => {
        wake.notify()
        dispatcher.dispatch()
      })
      guest?.start(host)
      // Peers learn of this worker before it asks for work (a failed start only disables peering).
      const peersUp = peersOn
        ? peering.start().catch((err: unknown) => log.warn('peer overlay did not start', errorFields(err)))
        : Promise.resolve()
      fillLoop = peersUp.then(restore).then(() => filler.run())
      log.info('worker started', {
        id: init.identity.id,
        threads: threads(),
        capacity: filler.capacity(),
        paused,
      })
    },
    pause: () => hold('volunteer'),
    resume: () => release('volunteer'),
    async stop(options: StopOptions = {}): Promise<void> {
      if (stopping) return
      stopping = true
      availableSub?.unsubscribe()
      wake.close()
      announced.close()
      peering.overlay.announceSoon()
      await fillLoop
      // Units not yet started go to peers or back to the coordinators at once, so others run them now.
      await shedder.shed(held.inState('buffered'), 'worker stopping')
      // Running units may finish within the drain time (their leases still renewed); the rest are
      // handed back too.
      if (!(await within(dispatcher.settled(), options.drainTimeoutMs ?? drainTimeoutMs))) {
        const running = held.inState('running')
        for (const h of running) h.abort.abort()
        await shedder.handBack(running, 'worker stopping before the unit finished')
        await within(dispatcher.settled(), ABORT_GRACE_MS)
      }
      keeper.stop()
      submitter.close()
      await peering.stop()
      await init.runner.close()
      log.info('worker stopped', { unitsDone: stats.unitsDone })
    },
  })
  // A getter (Object.assign would copy the value once).
  return Object.defineProperty(daemon, 'paused', { get: () => paused, enumerable: true }) as typeof daemon &
    Pick<WorkerDaemon, 'paused'>
}

/** How long aborted units may take to end at stop. */
const ABORT_GRACE_MS = 5_000

/** True if `p` settles within `ms`. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timedOut = new Promise<boolean>((r) => {
    timer = setTimeout(() => r(false), ms)
  })
  try {
    return await Promise.race([p.then(() => true), timedOut])
  } finally {
    clearTimeout(timer)
  }
}

/** The peer counts the policy's status file shows. */
function peerCounts(peering: Peering): PeerStatus {
  const o = peering.overlay.stats
  const x = peering.exchange.stats
  return {
    known: o.known,
    overlayEstimate: o.sizeEstimate,
    regionDepth: o.regionDepth,
    refused: o.refused,
    replayed: o.replayed,
    penalties: o.penalties,
    demoted: o.demoted,
    offersRefused: x.offersRefused,
    unprovenClaims: x.unprovenClaims,
  }
}
