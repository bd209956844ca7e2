// The contributor: one NATS connection over WebSocket, one worker daemon (the same as `cohort
// worker`) on a comlink pool of Web Workers, and the reasons it is paused. It connects when the
// volunteer first presses Start, not on page load, so a page nobody started costs nothing.
import type { Authenticator, NatsConnection } from '@nats-io/nats-core'
import {
  Emitter,
  errorFields,
  fromBase64Url,
  inboxPrefixFor,
  keyIdOf,
  subjectsFor,
  type AnyJobType,
  type ContributeConfig,
  type Identity,
  type Logger,
  type ResultAck,
  type UnitPayload,
} from '../shared/index.js'
import {
  connectWithCredentials,
  createCoordinatorClient,
  createWorkerDaemon,
  trustedKeysFrom,
  type WorkerDaemon,
  type VolunteerCredentials,
  type WorkerStats,
} from '../worker/portable.js'
import type { ComlinkRunner } from './comlink-runner.js'
import { createPartingRelease, type PartingRelease } from './parting-release.js'
import { acquireTabLock } from './tab-lock.js'

/** Why the contributor does not compute: the volunteer paused, the tab is hidden, the battery is low. */
export type PauseReason = 'user' | 'hidden' | 'battery'

export type ContributorState =
  'idle' | 'waiting' | 'connecting' | 'running' | 'paused' | 'offline' | 'left' | 'failed'

export type ContributorEvents = {
  /** The state or the pause reasons changed. */
  change: []
  /** A unit started computing on a Web Worker. */
  started: [unit: UnitPayload]
  /** The coordinator answered a result. */
  result: [unitId: string, ack: ResultAck]
  /** A unit failed verification and was not run. */
  refused: [reason: string]
}

export interface ContributorInit {
  config: ContributeConfig
  identity: Identity
  runner: ComlinkRunner
  jobTypes: Iterable<AnyJobType>
  log: Logger
  /**
   * The NATS credentials this browser signs up for with the coordinator (on the first Start, then
   * reused from IndexedDB until they near expiry).
   */
  credentials: VolunteerCredentials
  /**
   * Connects to NATS over WebSocket (`wsconnect` in the page); `inboxPrefix` is the volunteer's own
   * (inboxPrefixFor), `authenticator` logs in with its credentials.
   */
  connect: (
    wsUrl: string,
    name: string,
    inboxPrefix: string,
    authenticator: Authenticator,
  ) => Promise<NatsConnection>
  /** Web Locks of the page (`navigator.locks`): one contributing tab per browser profile. */
  locks?: LockManager
}

/** A peer as this browser last heard it announce itself. */
export interface ContributorPeer {
  id: string
  /** Units it would take from a peer now (a tab that pauses hands its buffered units to such peers). */
  free: number
}

export interface Contributor extends Emitter<ContributorEvents> {
  readonly state: ContributorState
  readonly reasons: ReadonlySet<PauseReason>
  /** The daemon's counters, once connected. */
  readonly stats: WorkerStats | undefined
  /** Peers this browser knows now (live, not banned or set aside), and the units each would take. */
  readonly peers: ContributorPeer[]
  /** The volunteer pressed Start or Resume (connects on the first start, or after a failure). */
  start(): void
  /** The volunteer pressed Pause. */
  pause(): void
  /** Set or clear an automatic pause reason; computing runs when no reason is left. */
  setPaused(reason: Exclude<PauseReason, 'user'>, on: boolean): void
  setThreads(n: number): void
  /** The page is going away: hand every lease back now, then stop. */
  leave(): void
}

export function createContributor(init: ContributorInit): Contributor {
  const { config, identity, log } = init
  const emitter = new Emitter<ContributorEvents>()
  const reasons = new Set<PauseReason>(['user'])
  let nats: NatsConnection | undefined
  let daemon: WorkerDaemon | undefined
  let parting: PartingRelease | undefined
  let phase: 'idle' | 'waiting' | 'connecting' | 'connected' | 'left' | 'failed' = 'idle'
  let unlock: (() => void) | undefined
  let online = true

  const left = (): boolean => phase === 'left'

  const state = (): ContributorState => {
    if (phase !== 'connected') return phase
    if (!online) return 'offline'
    return reasons.size > 0 ? 'paused' : 'running'
  }

  const apply = (): void => {
    if (daemon !== undefined) {
      if (reasons.size > 0) {
        daemon.pause().catch((err: unknown) => log.warn('pause failed', errorFields(err)))
      } else daemon.resume()
    }
    emitter.emit('change')
  }

  /** Set or clear a reason; connect once the volunteer has pressed Start (then stay paused if need be). */
  const update = (reason: PauseReason, on: boolean, force: boolean): void => {
    if (phase === 'left' || (on === reasons.has(reason) && !force)) return
    if (on) reasons.add(reason)
    else reasons.delete(reason)
    if (!reasons.has('user') && (phase === 'idle' || phase === 'failed')) void connect()
    else apply()
  }

  const watchStatus = async (nc: NatsConnection): Promise<void> => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnect') {
        online = s.type === 'reconnect'
        log.info(`nats ${s.type}`)
        emitter.emit('change')
      }
    }
  }

  const connect = async (): Promise<void> => {
    phase = 'connecting'
    emitter.emit('change')
    try {
      unlock ??= await acquireTabLock(init.locks, `cohort-contributor:${identity.id}`, () => {
        phase = 'waiting'
        log.info('another tab of this browser is contributing; this one takes over when it closes')
        emitter.emit('change')
      })
      // The page may have left while this tab waited for its turn.
      if (left()) {
        unlock()
        return
      }
      phase = 'connecting'
      emitter.emit('change')
      const trusted = trustedKeysFrom(
        await Promise.all(
          config.trust.map(async (k) => {
            const publicKey = fromBase64Url(k)
            return { publicKey, keyId: await keyIdOf(publicKey) }
          }),
        ),
      )
      // Signs up first if this browser has no usable credentials (a proof of work of a second or so).
      const nc = await connectWithCredentials(init.credentials, (authenticator) =>
        init.connect(
          config.natsWsUrl,
          `cohort-browser-${identity.id.slice(0, 8)}`,
          inboxPrefixFor(identity.id),
          authenticator,
        ),
      )
      if (left()) {
        await nc.close()
        return
      }
      nats = nc
      watchStatus(nc).catch((err: unknown) => log.debug('nats status stream ended', errorFields(err)))
      const d = createWorkerDaemon({
        nats: nc,
        identity,
        trusted,
        runner: init.runner,
        jobTypes: init.jobTypes,
        log: log.child('worker'),
        subjectPrefix: config.subjectPrefix,
        runtime: 'browser',
      })
      d.on('started', (unit) => emitter.emit('started', unit))
      d.on('refused', (reason) => emitter.emit('refused', reason))
      d.on('result', (unitId, ack) => emitter.emit('result', unitId, ack))
      daemon = d
      parting = createPartingRelease({
        nats: nc,
        client: createCoordinatorClient({ nats: nc, identity, subjects: subjectsFor(config.subjectPrefix) }),
        daemon: d,
        subject: subjectsFor(config.subjectPrefix).leaseRelease,
        log,
      })
      await d.pause()
      d.start()
      phase = 'connected'
      apply()
    } catch (err) {
      phase = 'failed'
      log.error('could not connect to the Cohort network', { url: config.natsWsUrl, ...errorFields(err) })
      emitter.emit('change')
    }
  }

  const contributor = Object.assign(emitter, {
    reasons,
    start(): void {
      update('user', false, true)
    },
    pause(): void {
      update('user', true, false)
    },
    setPaused(reason: Exclude<PauseReason, 'user'>, on: boolean): void {
      update(reason, on, false)
    },
    setThreads(n: number): void {
      init.runner.setThreads(n)
      log.info('threads changed', { threads: n })
      emitter.emit('change')
    },
    leave(): void {
      if (phase === 'left') return
      phase = 'left'
      parting?.send()
      parting?.stop()
      unlock?.()
      const d = daemon
      const nc = nats
      void (async () => {
        // Stopping the daemon closes the runner; without a daemon, close it here.
        if (d === undefined) await init.runner.close()
        else await d.stop({ drainTimeoutMs: 0 })
        init.credentials.stop()
        await nc?.close()
      })().catch((err: unknown) => log.debug('leaving did not finish', errorFields(err)))
      emitter.emit('change')
    },
  })
  // Getters (Object.assign would copy their values once).
  return Object.defineProperties(contributor, {
    state: { get: state, enumerable: true },
    stats: { get: () => daemon?.stats, enumerable: true },
    peers: {
      get: (): ContributorPeer[] =>
        daemon?.peering.overlay.peers().map((p) => ({ id: p.id, free: p.state.free })) ?? [],
      enumerable: true,
    },
  }) as typeof contributor & Pick<Contributor, 'state' | 'stats' | 'peers'>
}
