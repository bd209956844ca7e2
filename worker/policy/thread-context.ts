// The unit thread's side of the policy: a RunContext whose `shouldYield()` blocks in place while the
// daemon's control word says PAUSED and sleeps to hold the CPU duty cycle, and whose `progress()` and
// `checkpoint()` post (throttled) to the daemon on the task's port. Runtime-neutral; browsers never
// pass a control word, so they get the plain context.
import type { RunContext } from '../../shared/index.js'
import { PAUSED, SLOT, type ControlledTask, type ThreadMessage } from './control-word.js'

/** Work between two duty-cycle sleeps; short enough to keep the load smooth. */
const SLICE_MS = 20
const PROGRESS_EVERY_MS = 250

/**
 * The duty cycle holds across units on one thread: work done in the last slice of a run that ended
 * before its sleep is carried into the next run, less what the gap between the two runs already rested.
 * Without it, units shorter than a slice would run uncapped.
 */
let carried: { workMs: number; endedAt: number } | undefined

export interface ThreadContext {
  ctx: RunContext
  /** Milliseconds spent blocked (paused or sleeping): not compute time. */
  readonly blockedMs: number
  /** Tell the daemon the run ended (its last counters). */
  finish(): void
}

export function createThreadContext(task: ControlledTask): ThreadContext {
  const control = task.control === undefined ? undefined : new Int32Array(task.control)
  const port = task.port
  const post = (m: ThreadMessage): void => port?.postMessage(m)
  const now = (): number => performance.now()
  let steps = 0
  const baseStep = task.resumeFrom?.step ?? 0
  let blockedMs = 0
  let sliceStart = now()
  if (control !== undefined && carried !== undefined) {
    const duty = Atomics.load(control, SLOT.duty)
    const rested = duty > 0 && duty < 100 ? ((now() - carried.endedAt) * duty) / (100 - duty) : Infinity
    sliceStart -= Math.max(0, carried.workMs - rested)
  }
  let lastProgress = 0
  let lastCheckpoint = now()
  let fraction = 0

  const block = (ms: number | undefined): void => {
    if (control === undefined) return
    const t = now()
    // Wakes early when the daemon changes the state word (pause or resume).
    Atomics.wait(control, SLOT.state, Atomics.load(control, SLOT.state), ms)
    blockedMs += now() - t
  }

  const ctx: RunContext = {
    ...(task.resumeFrom === undefined ? {} : { resumeFrom: task.resumeFrom.state }),
    shouldYield() {
      steps++
      if (control === undefined) return false
      const duty = Atomics.load(control, SLOT.duty)
      if (duty > 0 && duty < 100) {
        const worked = now() - sliceStart
        if (worked >= SLICE_MS) {
          block((worked * (100 - duty)) / duty)
          sliceStart = now()
        }
      }
      if (Atomics.load(control, SLOT.state) === PAUSED) {
        while (Atomics.load(control, SLOT.state) === PAUSED) block(1_000)
        sliceStart = now()
      }
      return false
    },
    progress(f) {
      fraction = f
      const t = now()
      if (port === undefined || t - lastProgress < PROGRESS_EVERY_MS) return
      lastProgress = t
      post({ t: 'progress', fraction: f, steps })
    },
    checkpoint(state) {
      if (port === undefined || control === undefined) return
      const t = now()
      if (t - lastCheckpoint < Atomics.load(control, SLOT.checkpointMs)) return
      lastCheckpoint = t
      post({ t: 'checkpoint', state, step: baseStep + steps, fraction })
    },
  }
  return {
    ctx,
    get blockedMs() {
      return blockedMs
    },
    finish() {
      if (control !== undefined) carried = { workMs: now() - sliceStart, endedAt: now() }
      post({ t: 'done', steps, blockedMs: Math.round(blockedMs) })
    },
  }
}
