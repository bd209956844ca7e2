// The control word the daemon shares with every unit thread (a SharedArrayBuffer), and the messages
// a unit thread sends back on its port. Runtime-neutral: used on both sides of the thread boundary.

/** Int32 slots of the control word. */
export const SLOT = {
  /** RUNNING or PAUSED; threads `Atomics.wait` on it while PAUSED. */
  state: 0,
  /** CPU duty cycle in percent, 1..100. */
  duty: 1,
  /** Least milliseconds between two checkpoints a thread sends. */
  checkpointMs: 2,
} as const

export const RUNNING = 0
export const PAUSED = 1
export const CONTROL_SLOTS = 4

/** What a unit thread posts on its port. */
export type ThreadMessage =
  | { t: 'progress'; fraction: number; steps: number }
  | { t: 'checkpoint'; state: unknown; step: number; fraction: number }
  | { t: 'done'; steps: number; blockedMs: number }

/** Fields the daemon adds to a task when it runs under a policy; all absent in the browser. */
export interface ControlledTask {
  control?: SharedArrayBuffer
  port?: MessagePort
  resumeFrom?: { state: unknown; step: number }
}
