// The daemon's side of the control word: one SharedArrayBuffer read by every unit thread, so one store
// pauses (or throttles) all running kernels in place within their next `shouldYield()` call; and the
// per-run wiring of a task to its port, on which the thread reports progress and checkpoints.
import type { RunTask } from '../run-unit.js'
import { CONTROL_SLOTS, PAUSED, RUNNING, SLOT, type ThreadMessage } from './control-word.js'

export interface RunControl {
  readonly buffer: SharedArrayBuffer
  readonly paused: boolean
  readonly dutyCycle: number
  /** Running kernels block at their next yield point. */
  pause(): void
  resume(): void
  /** 1..100: the share of wall time each thread computes. */
  setDutyCycle(percent: number): void
  /** Least time between two checkpoints a thread sends. */
  setCheckpointMs(ms: number): void
}

export function createRunControl(init: { dutyCycle?: number; checkpointMs?: number } = {}): RunControl {
  const buffer = new SharedArrayBuffer(CONTROL_SLOTS * 4)
  const word = new Int32Array(buffer)
  Atomics.store(word, SLOT.duty, init.dutyCycle ?? 100)
  Atomics.store(word, SLOT.checkpointMs, init.checkpointMs ?? 30_000)
  const set = (state: number): void => {
    Atomics.store(word, SLOT.state, state)
    Atomics.notify(word, SLOT.state)
  }
  return {
    buffer,
    get paused() {
      return Atomics.load(word, SLOT.state) === PAUSED
    },
    get dutyCycle() {
      return Atomics.load(word, SLOT.duty)
    },
    pause: () => set(PAUSED),
    resume: () => set(RUNNING),
    setDutyCycle(percent) {
      Atomics.store(word, SLOT.duty, Math.max(1, Math.min(100, Math.round(percent))))
      Atomics.notify(word, SLOT.state)
    },
    setCheckpointMs(ms) {
      Atomics.store(word, SLOT.checkpointMs, Math.max(0, Math.round(ms)))
    },
  }
}

/** What the daemon wants to hear from one run, and where it resumes from. */
export interface RunHooks {
  resumeFrom?: { state: unknown; step: number }
  onProgress?(fraction: number, steps: number): void
  onCheckpoint?(state: unknown, step: number, fraction: number): void
  /** The run ended; `steps` yield points this run passed. */
  onDone?(steps: number): void
}

export interface WiredTask {
  task: RunTask
  transferList: MessagePort[]
  /** After the run settled: wait briefly for the thread's last message, then close the port. */
  close(): Promise<void>
}

export function wireTask(task: RunTask, control: RunControl, hooks: RunHooks = {}): WiredTask {
  const channel = new MessageChannel()
  let done: (() => void) | undefined
  const doneSeen = new Promise<void>((r) => (done = r))
  channel.port1.onmessage = (ev: MessageEvent<ThreadMessage>) => {
    const m = ev.data
    if (m.t === 'progress') hooks.onProgress?.(m.fraction, m.steps)
    else if (m.t === 'checkpoint') hooks.onCheckpoint?.(m.state, m.step, m.fraction)
    else {
      hooks.onDone?.(m.steps)
      done?.()
    }
  }
  return {
    task: {
      ...task,
      control: control.buffer,
      port: channel.port2,
      ...(hooks.resumeFrom === undefined ? {} : { resumeFrom: hooks.resumeFrom }),
    },
    transferList: [channel.port2],
    async close() {
      let timer: ReturnType<typeof setTimeout> | undefined
      await Promise.race([doneSeen, new Promise<void>((r) => (timer = setTimeout(r, 200)))])
      clearTimeout(timer)
      channel.port1.close()
    },
  }
}
