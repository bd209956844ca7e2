// The volunteer's worker daemon: asks for work when it has room, verifies every unit, runs units
// on its runner, signs and submits results, keeps its leases alive, and on stop hands back what
// it has not started and finishes (or hands back) what it has. No `node:` imports: the browser
// contributor runs this same daemon with a Web Worker runner and a WebSocket NATS connection.
import type { NatsConnection, Subscription } from '@nats-io/nats-core'
import {
  Emitter,
  errorFields,
  LIMITS,
  kindOf,
  subjectsFor,
  type AnyJobType,
  type Identity,
  type Logger,
  type ResultAck,
  type SignedEnvelope,
  type UnitPayload,
  type WorkerRuntime,
} from '../shared/index.js'
import {
  createCoordinatorClient,
  RequestRefusedError,
  type CoordinatorClient,
  type DataNeed,
} from './coordinator-client.js'
import type { DaemonGuest } from './policy/guest-hooks.js'
import { restoreUnits } from './policy/restore.js'
import type { RunOutcome, Runner } from './runner.js'
import { verifyUnit, type TrustedKeys } from './unit-verifier.js'
import { createModuleCache } from './module-cache.js'
import { withUnitResources } from './unit-resources.js'
import { createWake } from './wake.js'
import { createPeering, type PeerOptions, type Peering } from './peer/peering.js'
import type { Giveable } from './peer/exchange.js'

export interface WorkerDaemonInit {
  nats: NatsConnection
  identity: Identity
  /** Coordinator keys whose units this worker runs. */
  trusted: TrustedKeys
  runner: Runner
  jobTypes: Iterable<AnyJobType>
  log: Logger
  /** NATS subject prefix. Default `cohort`. */
  subjectPrefix?: string
  /**
   * Units held beyond those running, so a thread never waits on the network. Default: threads (read
   * again whenever `runner.threads` changes).
   */
  bufferUnits?: number
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

interface Held {
  unit: UnitPayload
  /** The coordinator's envelope, passed on when the unit is handed to a peer. */
  envelope?: SignedEnvelope
  /** `leaving`: being handed to a peer; `claiming`: being taken over from a peer (never run). */
  state: 'buffered' | 'running' | 'submitting' | 'leaving' | 'claiming'
  abort: AbortController
  expiresAt: number
  leaseMs: number
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
  const log = init.log
  const subjects = subjectsFor(init.subjectPrefix ?? 'cohort')
  const jobTypes = new Map<string, AnyJobType>()
  for (const t of init.jobTypes) jobTypes.set(kindOf(t), t)
  // Modules named by signed units, hash-checked; unit time limits. Large modules come as chunks from
  // peers (the peering made below), whole from a coordinator when peer exchange is off.
  const modules = createModuleCache({
    fetch: (hash, chunked) => client.getModule(hash, chunked),
    peering: () => (init.peers === false ? undefined : peering),
  })
  const runner = withUnitResources(init.runner, {
    jobTypes,
    modules,
    content: async (ref, signal) => {
      const held = await peering.fetcher.resolve(ref, signal)
      return { bytes: held.data, release: peering.content.pin(ref.root) }
    },
  })
  const accepts = [...jobTypes.keys()]
  // The runner's thread count may change while the daemon runs (the browser's threads slider).
  const threads = (): number => init.runner.threads
  const capacity = (): number => threads() + (init.bufferUnits ?? threads())
  const drainTimeoutMs = init.drainTimeoutMs ?? 30_000
  const held = new Map<string, Held>()
  /**
   * A replica this worker holds whose unit needs a module or content: coordinators serve data only
   * for such a lease. Units not being handed away come first; one being claimed is not held yet.
   */
  const unitNeeds = (unit: UnitPayload, need: DataNeed): boolean => {
    const jobType = jobTypes.get(unit.kind)
    try {
      return 'module' in need
        ? (jobType?.resources?.(unit.input) ?? []).includes(need.module)
        : (jobType?.content?.(unit.input) ?? []).some((ref) => ref.root === need.root)
    } catch {
      return false
    }
  }
  const leaseFor = (need: DataNeed): string | undefined => {
    let leaving: string | undefined
    for (const h of held.values()) {
      if (h.state === 'claiming') continue
      if (!unitNeeds(h.unit, need)) continue
      if (h.state !== 'leaving') return h.unit.replicaId
      leaving ??= h.unit.replicaId
    }
    return leaving
  }
  const client: CoordinatorClient = createCoordinatorClient({
    nats: init.nats,
    identity: init.identity,
    subjects,
    leaseFor,
    runtime: init.runtime ?? 'daemon',
    ...(init.requestTimeoutMs === undefined ? {} : { timeoutMs: init.requestTimeoutMs }),
  })
  const tasks = new Set<Promise<void>>()
  const wake = createWake()
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
  let stopping = false
  /** Wall time of the units run so far. */
  let wallMs = 0
  let paused = false
  let fillLoop: Promise<void> | undefined
  let renewTimer: ReturnType<typeof setTimeout> | undefined
  let availableSub: Subscription | undefined

  const count = (state: Held['state']): number => [...held.values()].filter((h) => h.state === state).length

  const newHeld = (unit: UnitPayload, envelope: SignedEnvelope | undefined, expiresAt: number): Held => ({
    unit,
    ...(envelope === undefined ? {} : { envelope }),
    state: 'buffered',
    abort: new AbortController(),
    expiresAt,
    leaseMs: Math.max(1, unit.expiresAt - unit.issuedAt),
  })

  /** Start fetching the content a unit reads as soon as it is accepted, so it is there when it runs. */
  const prefetch = (unit: UnitPayload): void => {
    for (const ref of jobTypes.get(unit.kind)?.content?.(unit.input) ?? []) {
      peering.fetcher
        .resolve(ref)
        .catch((err: unknown) => log.warn('could not fetch content', { root: ref.root, ...errorFields(err) }))
    }
  }

  const peersOn = init.peers !== false
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
      running: () => count('running'),
      buffered: () => count('buffered'),
      accepting: () => !stopping && !paused && init.guest?.mayStart() !== false,
      room: () => capacity() - held.size + count('submitting'),
      accepts: () => accepts,
      take(want, kinds, avoid) {
        const out: Giveable[] = []
        for (const h of [...held.values()].reverse()) {
          if (out.length >= want) break
          if (h.state !== 'buffered' || h.envelope === undefined) continue
          if (!kinds.has(h.unit.kind) || avoid.has(h.unit.unitId)) continue
          h.state = 'leaving'
          out.push({ envelope: h.envelope, unit: h.unit })
        }
        if (out.length > 0) refreshStats()
        return out
      },
      restore(ids) {
        for (const rid of ids) {
          const h = held.get(rid)
          if (h?.state === 'leaving') h.state = 'buffered'
        }
        refreshStats()
        dispatch()
      },
      forget(ids) {
        for (const rid of ids) {
          const h = held.get(rid)
          if (h?.state !== 'leaving') continue
          held.delete(rid)
          init.guest?.onFinished(h.unit, undefined)
        }
        refreshStats()
        wake.notify()
      },
      reserve(units) {
        const added = units.filter((u) => !held.has(u.replicaId))
        for (const u of added)
          held.set(u.replicaId, { ...newHeld(u, undefined, u.expiresAt), state: 'claiming' })
        return () => {
          for (const u of added) if (held.get(u.replicaId)?.state === 'claiming') held.delete(u.replicaId)
        }
      },
      adopt: (units) => accept(units, true),
    },
  })
  const refreshStats = (): void => {
    stats.held = held.size
    stats.running = count('running')
    emitter.emit('held', [...held.keys()])
  }

  const track = (p: Promise<void>): void => {
    tasks.add(p)
    void p.finally(() => tasks.delete(p))
  }

  const submit = async (h: Held, outcome: RunOutcome): Promise<void> => {
    const { unit } = h
    for (let attempt = 0; ; attempt++) {
      try {
        const ack = await client.submitResult({
          replicaId: unit.replicaId,
          unitId: unit.unitId,
          jobId: unit.jobId,
          digest: outcome.digest,
          output: outcome.output,
          computeMs: outcome.computeMs,
        })
        if (ack.status === 'accepted') stats.resultsAccepted++
        else if (ack.status === 'duplicate') stats.resultsDuplicate++
        else {
          stats.resultsRejected++
          log.warn('result rejected', { unitId: unit.unitId, reason: ack.reason })
        }
        emitter.emit('result', unit.unitId, ack)
        return
      } catch (err) {
        // A refusal will not change on retry; a timeout or a missing coordinator might.
        if (err instanceof RequestRefusedError) {
          stats.resultsRejected++
          log.warn('result refused', { unitId: unit.unitId, ...errorFields(err) })
          return
        }
        if (Date.now() > h.expiresAt + h.leaseMs) {
          log.warn('giving up on a result: its lease has long passed', { unitId: unit.unitId })
          return
        }
        log.debug('result submit failed; retrying', { unitId: unit.unitId, attempt, ...errorFields(err) })
        await new Promise((r) => setTimeout(r, Math.min(5_000, 200 * 2 ** Math.min(attempt, 5))))
      }
    }
  }

  const runOne = async (h: Held): Promise<void> => {
    h.state = 'running'
    refreshStats()
    emitter.emit('started', h.unit)
    try {
      log.debug('unit started', { unitId: h.unit.unitId, replicaId: h.unit.replicaId })
      const task = { kind: h.unit.kind, input: h.unit.input }
      const startedAt = Date.now()
      const outcome = await runner.run(task, h.abort.signal, init.guest?.hooksFor(h.unit))
      init.guest?.onFinished(h.unit, outcome)
      // Wall time, pauses and fetching included: what the buffer really waits for.
      wallMs += Date.now() - startedAt
      stats.unitsDone++
      stats.computeMs += outcome.computeMs
      h.state = 'submitting'
      // The thread is free now: start the next buffered unit while this result travels, and
      // refill the buffer.
      refreshStats()
      dispatch()
      wake.notify()
      await submit(h, outcome)
    } catch (err) {
      if (!h.abort.signal.aborted) {
        stats.unitsFailed++
        log.warn('unit failed to run; handing it back', { unitId: h.unit.unitId, ...errorFields(err) })
        await client
          .release([h.unit.replicaId], `run failed: ${(err as Error).message}`.slice(0, 200))
          .catch(() => {})
      }
    } finally {
      if (init.guest !== undefined && h.state !== 'submitting') init.guest.onFinished(h.unit, undefined)
      held.delete(h.unit.replicaId)
      refreshStats()
      wake.notify()
      dispatch()
    }
  }

  const dispatch = (): void => {
    if (stopping || paused || init.guest?.mayStart() === false) return
    for (const h of held.values()) {
      if (count('running') >= threads()) break
      if (h.state === 'buffered') track(runOne(h))
    }
  }

  const accept = async (
    grantUnits: Awaited<ReturnType<CoordinatorClient['requestWork']>>['units'],
    fromPeer = false,
  ): Promise<void> => {
    for (const env of grantUnits) {
      try {
        const unit = await verifyUnit(env, {
          trusted: init.trusted,
          self: init.identity.id,
          jobTypes,
          now: Date.now(),
        })
        const prior = held.get(unit.replicaId)
        if (prior !== undefined && !(fromPeer && prior.state === 'claiming')) continue
        init.guest?.onAccepted(env, unit)
        held.set(unit.replicaId, newHeld(unit, env, unit.expiresAt))
        prefetch(unit)
      } catch (err) {
        stats.unitsRefused++
        const reason = `${(err as Error).name}: ${(err as Error).message}`
        log.warn('refused a unit', { reason })
        emitter.emit('refused', reason)
      }
    }
    refreshStats()
    dispatch()
    scheduleRenew()
  }

  const fill = async (): Promise<void> => {
    let backoff = 250
    // A coordinator that rate-limited this worker said when to ask again: no wake-up comes sooner.
    let notBefore = 0
    while (!stopping) {
      if (Date.now() < notBefore) {
        await wake.wait(notBefore - Date.now())
        continue
      }
      // Results on their way back do not take room: only units still to compute do.
      const guestCap = init.guest?.admit(
        [...held.values()].map((h) => ({
          replicaId: h.unit.replicaId,
          kind: h.unit.kind,
          expiresAt: h.expiresAt,
          state: h.state === 'running' || h.state === 'submitting' ? h.state : 'buffered',
        })),
        threads(),
      )
      const want = Math.min(
        LIMITS.maxWant,
        capacity() - held.size + count('submitting'),
        guestCap ?? Number.POSITIVE_INFINITY,
      )
      if (paused || want <= 0) {
        await wake.wait(5_000)
        continue
      }
      try {
        const grant = await client.requestWork(want, accepts, [...held.keys()].slice(0, LIMITS.maxReplicaIds))
        backoff = 250
        if (grant.limit !== undefined) log.debug('work request limited', { ...grant.limit })
        if (grant.limit?.by === 'rate') notBefore = Date.now() + grant.retryAfterMs
        await accept(grant.units)
        // Too late to run them: stop() or pause() hands them straight back.
        if (stopping) break
        if (paused) await shed(buffered(), 'worker paused')
        else if (grant.units.length === 0 && !(await stealIfIdle())) await wake.wait(grant.retryAfterMs)
      } catch (err) {
        log.debug('work request failed', errorFields(err))
        await wake.wait(backoff)
        backoff = Math.min(5_000, backoff * 2)
      }
    }
  }

  /** No work from the coordinators and threads idle: take buffered units from a busy peer. */
  const stealIfIdle = async (): Promise<boolean> => {
    const idle = threads() - count('running') - count('buffered')
    if (init.peers === false || init.peers?.steal === false) return false
    if (idle <= 0 || paused || stopping) return false
    return (await peering.exchange.steal(idle)) > 0
  }

  const renew = async (): Promise<void> => {
    // Units being claimed from a peer are not this worker's at the coordinator yet.
    const ids = [...held.values()]
      .filter((h) => h.state !== 'claiming')
      .map((h) => h.unit.replicaId)
      .slice(0, 256)
    if (ids.length === 0) return
    const reply = await client.renew(ids)
    for (const [rid, at] of Object.entries(reply.expiresAt)) {
      const h = held.get(rid)
      if (h !== undefined) h.expiresAt = at
    }
    if (reply.lost.length > 0) {
      stats.leasesLost += reply.lost.length
      for (const rid of reply.lost) {
        const h = held.get(rid)
        if (h === undefined || h.state === 'submitting') continue
        h.abort.abort()
        held.delete(rid)
      }
      refreshStats()
      emitter.emit('lost', reply.lost)
      wake.notify()
    }
  }

  function scheduleRenew(): void {
    if (renewTimer !== undefined || stopping || held.size === 0) return
    const shortest = Math.min(...[...held.values()].map((h) => h.leaseMs))
    renewTimer = setTimeout(
      () => {
        renewTimer = undefined
        renew()
          .then(shedOverload)
          .catch((err: unknown) => log.debug('lease renewal failed', errorFields(err)))
          .finally(scheduleRenew)
      },
      Math.max(100, Math.floor(shortest / 3)),
    )
  }

  /** Units an earlier run checkpointed (policy only): renewed, then run from their checkpoint. */
  const restore = async (): Promise<void> => {
    if (init.guest === undefined) return
    const restored = await restoreUnits({
      guest: init.guest,
      client,
      trusted: init.trusted,
      self: init.identity.id,
      jobTypes,
      log,
    }).catch((err: unknown) => {
      log.warn('could not restore saved units', errorFields(err))
      return []
    })
    for (const { unit, expiresAt } of restored) {
      held.set(unit.replicaId, newHeld(unit, undefined, expiresAt))
      prefetch(unit)
    }
    if (restored.length > 0) {
      refreshStats()
      dispatch()
      scheduleRenew()
    }
  }

  const buffered = (): Held[] => [...held.values()].filter((h) => h.state === 'buffered')

  /** Hand units to peers with room (the coordinator moves the leases); returns those no peer took. */
  const giveToPeers = async (hs: Held[]): Promise<Held[]> => {
    const giveable = hs.filter((h): h is Held & { envelope: SignedEnvelope } => h.envelope !== undefined)
    if (!peersOn || giveable.length === 0) return hs
    for (const h of giveable) h.state = 'leaving'
    refreshStats()
    const left = new Set(
      await peering.exchange.handoff(giveable.map((h) => ({ envelope: h.envelope, unit: h.unit }))),
    )
    for (const h of giveable) {
      if (left.has(h.unit.replicaId)) h.state = 'buffered'
      else {
        held.delete(h.unit.replicaId)
        init.guest?.onFinished(h.unit, undefined)
      }
    }
    refreshStats()
    return hs.filter((h) => held.get(h.unit.replicaId) === h)
  }

  /** Units this worker will not start go to peers, the rest back to the coordinators: none waits to expire. */
  const shed = async (hs: Held[], reason: string): Promise<void> => {
    if (hs.length > 0) await handBack(await giveToPeers(hs), reason)
  }

  /**
   * More buffered units than this worker can start before their leases run out (at the measured time
   * per unit): the excess goes to peers with room, and stays here when no peer has any.
   */
  const shedOverload = async (): Promise<void> => {
    if (!peersOn || stats.unitsDone === 0 || stopping || paused) return
    const perUnit = wallMs / stats.unitsDone
    const startsAt = (k: number): number =>
      Date.now() + Math.floor((k + count('running')) / threads()) * perUnit
    const late = buffered().filter((h, k) => startsAt(k) > h.expiresAt)
    if (late.length === 0 || !peering.overlay.peers().some((p) => p.state.free > 0)) return
    await giveToPeers(late)
    dispatch()
  }

  const handBack = async (hs: Held[], reason: string): Promise<void> => {
    if (hs.length === 0) return
    for (const h of hs) held.delete(h.unit.replicaId)
    refreshStats()
    const ids = hs.map((h) => h.unit.replicaId)
    try {
      const r = await client.release(ids, reason)
      log.info('handed back leases', { n: r.released, reason })
    } catch (err) {
      log.warn('could not hand back leases; they will expire', errorFields(err))
    }
  }

  const daemon = Object.assign(emitter, {
    id: init.identity.id,
    stats,
    peering,
    start(): void {
      availableSub = init.nats.subscribe(subjects.workAvailable, { callback: () => wake.notify() })
      init.guest?.onChange(() => {
        wake.notify()
        dispatch()
      })
      // Peers learn of this worker before it asks for work (a failed start only disables peering).
      const peersUp = peersOn
        ? peering.start().catch((err: unknown) => log.warn('peer overlay did not start', errorFields(err)))
        : Promise.resolve()
      fillLoop = peersUp.then(restore).then(fill)
      log.info('worker started', { id: init.identity.id, threads: threads(), capacity: capacity(), paused })
    },
    async pause(): Promise<void> {
      if (stopping || paused) return
      paused = true
      log.info('worker paused', { running: stats.running })
      peering.overlay.announceSoon()
      await shed(buffered(), 'worker paused')
    },
    resume(): void {
      if (stopping || !paused) return
      paused = false
      log.info('worker resumed')
      wake.notify()
      dispatch()
    },
    async stop(options: StopOptions = {}): Promise<void> {
      if (stopping) return
      stopping = true
      availableSub?.unsubscribe()
      wake.close()
      peering.overlay.announceSoon()
      await fillLoop
      // Units not yet started go to peers or back to the coordinators at once, so others run them now.
      await shed(buffered(), 'worker stopping')
      // Running units may finish within the drain time; the rest are handed back too.
      let timer: ReturnType<typeof setTimeout> | undefined
      const drained = Promise.allSettled([...tasks]).then(() => true)
      const timedOut = new Promise<boolean>((r) => {
        timer = setTimeout(() => r(false), options.drainTimeoutMs ?? drainTimeoutMs)
      })
      if (!(await Promise.race([drained, timedOut]))) {
        const running = [...held.values()].filter((h) => h.state === 'running')
        for (const h of running) h.abort.abort()
        await handBack(running, 'worker stopping before the unit finished')
        await Promise.race([Promise.allSettled([...tasks]), new Promise((r) => setTimeout(r, 5_000))])
      }
      clearTimeout(timer)
      clearTimeout(renewTimer)
      renewTimer = undefined
      await peering.stop()
      await init.runner.close()
      log.info('worker stopped', { unitsDone: stats.unitsDone })
    },
  })
  // A getter (Object.assign would copy the value once).
  return Object.defineProperty(daemon, 'paused', { get: () => paused, enumerable: true }) as typeof daemon &
    Pick<WorkerDaemon, 'paused'>
}
