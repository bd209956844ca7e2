// The idle monitor: looks at the machine every `pollSeconds` and says whether the policy lets the
// daemon compute now, and if not, why. Pauses at once; resumes only after `idle.resumeSeconds` of
// calm. A signal that cannot be read is logged once and left out (CPU use then decides alone).
import { Emitter, errorFields, type Logger } from '../../shared/index.js'
import { parseWindow, type GuestPolicy } from './options.js'
import type { BatteryState, MachineProbes } from './probes.js'

export type PauseReason = 'user active' | 'CPU busy' | 'on battery' | 'battery low' | 'outside window'

export interface MachineSample {
  at: Date
  otherCpuPercent: number
  /** Undefined when not read (policy `always`, `idle.input: none`, or unavailable). */
  inputIdleMs: number | undefined
  battery: BatteryState | undefined
}

/** Why the policy forbids computing now, or undefined when it allows it. */
export function pauseReason(p: GuestPolicy, s: MachineSample): PauseReason | undefined {
  if (p.windows.length > 0) {
    const minute = s.at.getHours() * 60 + s.at.getMinutes()
    const inside = p.windows.some((w) => {
      const { start, end } = parseWindow(w)
      return start < end ? minute >= start && minute < end : minute >= start || minute < end
    })
    if (!inside) return 'outside window'
  }
  if (s.battery?.onBattery === true) {
    if (!p.battery.runOnBattery) return 'on battery'
    if (s.battery.percent !== undefined && s.battery.percent < p.battery.minPercent) return 'battery low'
  }
  if (p.run === 'idle') {
    if (s.inputIdleMs !== undefined && s.inputIdleMs < p.idle.inputMinutes * 60_000) return 'user active'
    if (s.otherCpuPercent > p.idle.otherCpuPercent) return 'CPU busy'
  }
  return undefined
}

export type MonitorEvents = {
  /** The verdict changed: `reason` undefined means computing is allowed. */
  change: [reason: PauseReason | undefined, sample: MachineSample]
  /** Every sample, for status displays. */
  sample: [sample: MachineSample]
}

export interface IdleMonitor extends Emitter<MonitorEvents> {
  /** The current verdict (undefined: computing allowed). */
  readonly reason: PauseReason | undefined
  readonly last: MachineSample | undefined
  start(): void
  stop(): void
  /** One look at the machine now (the timer calls this). */
  tick(): Promise<void>
}

export interface IdleMonitorInit {
  policy: GuestPolicy
  probes: MachineProbes
  log: Logger
  now?: () => Date
}

/** How often the battery is read, ms (it changes slowly; reading it may spawn a process). */
const BATTERY_EVERY_MS = 10_000

export function createIdleMonitor(init: IdleMonitorInit): IdleMonitor {
  const { policy, probes, log } = init
  const now = init.now ?? (() => new Date())
  const readInput = policy.run === 'idle' && policy.idle.input === 'auto'
  let inputOk = readInput
  let batteryOk = true
  let battery: BatteryState | undefined
  let batteryAt = 0
  let reason: PauseReason | undefined
  let last: MachineSample | undefined
  let calmSince: number | undefined
  let timer: ReturnType<typeof setInterval> | undefined
  let busy = false
  const emitter = new Emitter<MonitorEvents>()

  const tick = async (): Promise<void> => {
    if (busy) return
    busy = true
    try {
      const at = now()
      const otherCpuPercent = probes.otherCpuPercent()
      let inputIdleMs: number | undefined
      if (inputOk) {
        try {
          inputIdleMs = await probes.inputIdleMs()
        } catch (err) {
          inputOk = false
          log.warn('cannot read user input idle time; deciding idleness by CPU use only', errorFields(err))
        }
      }
      if (batteryOk && at.getTime() - batteryAt >= BATTERY_EVERY_MS) {
        batteryAt = at.getTime()
        try {
          battery = await probes.battery()
        } catch (err) {
          batteryOk = false
          log.warn('cannot read the battery state; running as if on mains power', errorFields(err))
        }
      }
      const sample: MachineSample = { at, otherCpuPercent, inputIdleMs, battery }
      last = sample
      emitter.emit('sample', sample)
      const r = pauseReason(policy, sample)
      if (r !== undefined) {
        calmSince = undefined
        if (r !== reason) {
          reason = r
          emitter.emit('change', r, sample)
        }
      } else if (reason !== undefined) {
        calmSince ??= at.getTime()
        if (at.getTime() - calmSince >= policy.idle.resumeSeconds * 1000) {
          reason = undefined
          emitter.emit('change', undefined, sample)
        }
      }
    } finally {
      busy = false
    }
  }

  const monitor = Object.assign(emitter, {
    start(): void {
      if (timer !== undefined) return
      // The first look after one period: CPU use is a difference over an interval.
      timer = setInterval(() => void tick(), policy.pollSeconds * 1000)
    },
    stop(): void {
      clearInterval(timer)
      timer = undefined
      probes.close()
    },
    tick,
  })
  Object.defineProperty(monitor, 'reason', { get: () => reason, enumerable: true })
  Object.defineProperty(monitor, 'last', { get: () => last, enumerable: true })
  return monitor as IdleMonitor
}
