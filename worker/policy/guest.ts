// The good guest: applies the volunteer's policy to a running daemon. The idle monitor's verdict
// pauses running units in place (the shared control word) and stops new ones; a long pause hands
// unstarted units back; units checkpoint to disk and resume after a restart; the work held is capped
// by the buffer and the lease deadlines; and a status file is written every second.
import type { Logger, SignedEnvelope, UnitPayload, VolunteerRecord } from '../../shared/index.js'
import type { RunOutcome } from '../run-unit.js'
import { createCheckpointStore, type CheckpointStore, type SavedCheckpoint } from './checkpoint-store.js'
import type { DaemonGuest, GuestHost, HeldView, SavedUnit } from './guest-hooks.js'
import { createIdleMonitor, type IdleMonitor, type PauseReason } from './monitor.js'
import type { GuestPolicy } from './options.js'
import { admitUnits } from './planner.js'
import type { MachineProbes } from './probes.js'
import { createRunControl, type RunControl, type RunHooks } from './run-control.js'
import { writeStatus, type UnitStatus, type WorkerStatus } from './status.js'

export interface GuestInit {
  policy: GuestPolicy
  threads: number
  probes: MachineProbes
  /** Checkpoints and the status file live here. */
  stateDir: string
  log: Logger
  /** Status file period, ms. Default 1000. */
  statusEveryMs?: number
  /** The identity's record at its coordinator, for the status file (worker/standing-poller.ts). */
  standing?: () => { record: VolunteerRecord; at: number } | undefined
}

export interface Guest {
  /** Give these to the daemon (`WorkerDaemonInit.guest`): it starts the policy when it starts. */
  readonly hooks: DaemonGuest
  readonly control: RunControl
  readonly monitor: IdleMonitor
  readonly store: CheckpointStore
  stop(): Promise<void>
}

interface Live {
  unit: UnitPayload
  envelope: SignedEnvelope
  acceptedAt: number
  status: UnitStatus
}

export function createGuest(init: GuestInit): Guest {
  const { policy, log, stateDir } = init
  const control = createRunControl({
    dutyCycle: policy.cpu.dutyCycle,
    checkpointMs: policy.checkpointSeconds * 1000,
  })
  const monitor = createIdleMonitor({ policy, probes: init.probes, log })
  const store = createCheckpointStore(stateDir)
  const live = new Map<string, Live>()
  const restored = new Map<string, SavedCheckpoint>()
  const unitSeconds = new Map<string, number>()
  const computeMsByUnit = new Map<string, number>()
  const changeCallbacks: (() => void)[] = []
  let ready = false
  let reason: PauseReason | undefined
  let leaseMs: number | undefined
  let credit = 0
  let host: GuestHost | undefined
  let handBackTimer: ReturnType<typeof setTimeout> | undefined
  let handedBack = false
  let statusTimer: ReturnType<typeof setInterval> | undefined
  let lastCpu = process.cpuUsage()
  let lastCpuAt = performance.now()
  let writing = false

  const changed = (): void => {
    for (const c of changeCallbacks) c()
  }

  const apply = (r: PauseReason | undefined): void => {
    ready = true
    reason = r
    if (r !== undefined) {
      control.pause()
      log.info('worker suspended', { reason: r, running: host?.counts().running ?? 0 })
      clearTimeout(handBackTimer)
      handBackTimer = setTimeout(() => {
        // Paused for long: unstarted units go back so another volunteer can run them; running units
        // stay paused in place and their leases keep being renewed.
        handedBack = true
        void host?.pause()
      }, policy.handBackAfterMinutes * 60_000)
    } else {
      clearTimeout(handBackTimer)
      control.resume()
      log.info('worker resumed computing')
      if (handedBack) {
        handedBack = false
        host?.resume()
      }
    }
    changed()
  }

  const hooks: DaemonGuest = {
    mayStart: () => ready && reason === undefined,
    admit(held: readonly HeldView[], threads: number): number {
      if (!ready || reason !== undefined) return 0
      const n = admitUnits({
        now: Date.now(),
        threads,
        held,
        unitSeconds: (kind) => (kind === '*' ? average() : unitSeconds.get(kind)),
        progress: (rid) => live.get(rid)?.status.progress ?? 0,
        dutyCycle: control.dutyCycle,
        bufferMinutes: policy.bufferMinutes,
        leaseMs,
      })
      log.debug('work cap', {
        admit: n,
        held: held.length,
        leaseMs,
        unitSeconds: Object.fromEntries(unitSeconds),
      })
      return n
    },
    onAccepted(envelope, unit) {
      leaseMs = Math.max(1, unit.expiresAt - unit.issuedAt)
      live.set(unit.replicaId, {
        unit,
        envelope,
        acceptedAt: restored.get(unit.replicaId)?.acceptedAt ?? Date.now(),
        status: { unitId: unit.unitId, kind: unit.kind, state: 'buffered', progress: 0, steps: 0 },
      })
    },
    hooksFor(unit): RunHooks {
      const l = live.get(unit.replicaId)
      const saved = restored.get(unit.replicaId)
      if (l !== undefined) l.status.state = 'running'
      const h: RunHooks = {
        onProgress(fraction, steps) {
          if (l === undefined) return
          l.status.progress = fraction
          l.status.steps = steps
        },
        onCheckpoint(state, step, fraction) {
          if (l === undefined) return
          store
            .save({
              v: 1,
              replicaId: unit.replicaId,
              unitId: unit.unitId,
              kind: unit.kind,
              envelope: l.envelope,
              acceptedAt: l.acceptedAt,
              savedAt: Date.now(),
              state,
              step,
              fraction,
            })
            .catch((err: unknown) =>
              log.warn('could not save a checkpoint', { unitId: unit.unitId, err: String(err) }),
            )
        },
        onDone(steps) {
          if (l !== undefined) l.status.steps = steps
          log.info('unit run ended', {
            unitId: unit.unitId,
            steps,
            ...(saved === undefined ? {} : { resumedAtStep: saved.step }),
          })
        },
      }
      if (saved !== undefined) {
        h.resumeFrom = { state: saved.state, step: saved.step }
        if (l !== undefined) {
          l.status.resumedAtStep = saved.step
          l.status.progress = saved.fraction
        }
        log.info(`resumed unit ${unit.unitId} at step ${saved.step}`, {
          unitId: unit.unitId,
          step: saved.step,
        })
      }
      return h
    },
    onFinished(unit, outcome: RunOutcome | undefined) {
      live.delete(unit.replicaId)
      restored.delete(unit.replicaId)
      void store.remove(unit.replicaId).catch(() => {})
      if (outcome === undefined) return
      computeMsByUnit.set(unit.unitId, outcome.computeMs)
      const s = outcome.computeMs / 1000
      const prev = unitSeconds.get(unit.kind)
      unitSeconds.set(unit.kind, prev === undefined ? s : 0.7 * prev + 0.3 * s)
    },
    async restore(): Promise<SavedUnit[]> {
      const all = await store.list()
      for (const c of all) restored.set(c.replicaId, c)
      if (all.length > 0) log.info('found checkpoints of an earlier run', { units: all.length })
      return all.map((c) => ({ envelope: c.envelope, acceptedAt: c.acceptedAt }))
    },
    onChange(callback) {
      changeCallbacks.push(callback)
    },
    start(h) {
      host = h
      monitor.on('change', (r) => apply(r))
      // The first verdict comes after one poll period (CPU use needs an interval to be measured);
      // with nothing to watch, computing is allowed at once.
      monitor.start()
      const watches =
        policy.run === 'idle' ||
        policy.windows.length > 0 ||
        !policy.battery.runOnBattery ||
        policy.battery.minPercent > 0
      if (!watches) apply(undefined)
      else
        monitor.once('sample', () => {
          if (!ready) apply(monitor.reason)
        })
      statusTimer = setInterval(() => void flushStatus(), init.statusEveryMs ?? 1_000)
      void flushStatus()
    },
    onResult(unitId, ack) {
      if (ack.status === 'accepted') credit += (computeMsByUnit.get(unitId) ?? 0) / 1000
      computeMsByUnit.delete(unitId)
    },
    onHeld(ids) {
      const now = new Set(ids)
      for (const [rid, l] of live) if (!now.has(rid) && l.status.state !== 'running') live.delete(rid)
    },
  }

  function average(): number | undefined {
    if (unitSeconds.size === 0) return undefined
    return [...unitSeconds.values()].reduce((a, b) => a + b, 0) / unitSeconds.size
  }

  const snapshot = (): WorkerStatus => {
    const cpu = process.cpuUsage()
    const t = performance.now()
    const own =
      ((cpu.user - lastCpu.user + cpu.system - lastCpu.system) / 1000 / Math.max(1, t - lastCpuAt)) * 100
    lastCpu = cpu
    lastCpuAt = t
    const stats = host?.counts()
    const m = monitor.last
    const running = stats?.running ?? 0
    const standing = init.standing?.()
    return {
      v: 1,
      pid: process.pid,
      workerId: host?.id ?? '',
      updatedAt: new Date().toISOString(),
      state:
        stats?.mode === 'finishing'
          ? 'finishing'
          : reason !== undefined || stats?.mode === 'paused'
            ? 'paused'
            : running > 0
              ? 'computing'
              : 'waiting',
      ...(reason === undefined
        ? stats?.mode === 'paused'
          ? { reason: 'paused by the volunteer' }
          : {}
        : { reason }),
      policy: { run: policy.run, dutyCycle: control.dutyCycle, bufferMinutes: policy.bufferMinutes },
      threads: init.threads,
      threadsInUse: reason !== undefined ? 0 : running,
      held: stats?.held ?? 0,
      unitsDone: stats?.unitsDone ?? 0,
      resultsAccepted: stats?.resultsAccepted ?? 0,
      credit: Math.round(credit * 10) / 10,
      ...(standing === undefined
        ? {}
        : {
            coordinator: {
              creditMs: standing.record.creditMs,
              unitsValidated: standing.record.unitsValidated,
              ...(standing.record.rank === undefined ? {} : { rank: standing.record.rank }),
              ...(standing.record.name === undefined ? {} : { name: standing.record.name }),
              ...(standing.record.team === undefined ? {} : { team: standing.record.team }),
              readAt: new Date(standing.at).toISOString(),
            },
          }),
      unitSeconds: Object.fromEntries(unitSeconds),
      ...(leaseMs === undefined ? {} : { leaseMs }),
      ownCpuPercent: Math.round(own * 10) / 10,
      ...(m === undefined
        ? {}
        : {
            machine: {
              otherCpuPercent: Math.round(m.otherCpuPercent * 10) / 10,
              ...(m.inputIdleMs === undefined ? {} : { inputIdleMs: Math.round(m.inputIdleMs) }),
              ...(m.battery === undefined
                ? {}
                : {
                    onBattery: m.battery.onBattery,
                    ...(m.battery.percent === undefined ? {} : { batteryPercent: m.battery.percent }),
                  }),
            },
          }),
      ...(stats === undefined ? {} : { peers: stats.peers }),
      units: [...live.values()].map((l) => ({ ...l.status })),
    }
  }

  const flushStatus = async (): Promise<void> => {
    if (writing) return
    writing = true
    try {
      await writeStatus(stateDir, snapshot())
    } catch (err) {
      log.debug('could not write the status file', { err: String(err) })
    } finally {
      writing = false
    }
  }

  return {
    hooks,
    control,
    monitor,
    store,
    async stop() {
      clearInterval(statusTimer)
      clearTimeout(handBackTimer)
      monitor.stop()
      // Paused kernels must not block the pool's shutdown.
      control.resume()
      await flushStatus()
      const s = snapshot()
      await writeStatus(stateDir, { ...s, state: 'stopped', units: [] }).catch(() => {})
    },
  }
}
