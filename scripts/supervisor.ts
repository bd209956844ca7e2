// Keeps one child process running: restarts it with backoff when it dies unexpectedly, and stops it
// within a bound (SIGTERM, then SIGKILL), whether it is running, restarting or already dead.
import type { ChildProcess } from 'node:child_process'

export interface SupervisorOptions {
  /** For messages: "worker 0". */
  name: string
  /** Starts a new instance of the child. */
  spawn: () => ChildProcess
  /** One line per event worth telling the user (exits, restarts). */
  say: (line: string) => void
  /** First restart delay; doubles on each quick death, up to `maxBackoffMs` (default 1 s). */
  initialBackoffMs?: number
  /** Longest restart delay (default 30 s). */
  maxBackoffMs?: number
  /** A child that ran this long before dying restarts after the initial delay again (default 60 s). */
  stableAfterMs?: number
}

export interface Supervisor {
  /** The running child's pid, or undefined while it is down. */
  readonly pid: number | undefined
  /** How many times the child has been restarted. */
  readonly restarts: number
  /** Resolves on the next (re)start, with the new pid. */
  nextStart(): Promise<number>
  /** Stops supervising: SIGTERM to the child, SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs: number): Promise<void>
}

/** An exit the user asked for (Ctrl-C reaches the whole process group), not one to restart after. */
export function isDeliberateExit(code: number | null, signal: NodeJS.Signals | null): boolean {
  return code === 0 || code === 130 || signal === 'SIGINT' || signal === 'SIGTERM'
}

export function supervise(o: SupervisorOptions): Supervisor {
  const initial = o.initialBackoffMs ?? 1000
  const max = o.maxBackoffMs ?? 30_000
  const stableAfter = o.stableAfterMs ?? 60_000
  let child: ChildProcess | undefined
  let exited: Promise<void> = Promise.resolve()
  let stopping = false
  let restarts = 0
  let backoff = initial
  let restartTimer: NodeJS.Timeout | undefined
  let waiters: Array<(pid: number) => void> = []

  const start = (): void => {
    restartTimer = undefined
    const c = o.spawn()
    child = c
    const startedAt = Date.now()
    exited = new Promise<void>((resolve) => {
      const done = (code: number | null, signal: NodeJS.Signals | null, why?: string): void => {
        if (child === c) child = undefined
        resolve()
        if (stopping) return
        const how = why ?? (signal === null ? `exit code ${code}` : `signal ${signal}`)
        if (why === undefined && isDeliberateExit(code, signal)) {
          o.say(`${o.name} stopped (${how}); not restarting it`)
          return
        }
        if (Date.now() - startedAt >= stableAfter) backoff = initial
        o.say(`${o.name} exited unexpectedly (${how}); restarting it in ${(backoff / 1000).toFixed(1)} s`)
        restartTimer = setTimeout(() => {
          restarts++
          start()
        }, backoff)
        backoff = Math.min(max, backoff * 2)
      }
      c.once('exit', (code, signal) => done(code, signal))
      c.once('error', (err) => {
        // Spawning failed: no 'exit' follows.
        if (c.pid === undefined) done(null, null, err.message)
      })
    })
    if (c.pid !== undefined) {
      const pid = c.pid
      const ws = waiters
      waiters = []
      for (const w of ws) w(pid)
    }
  }
  start()

  return {
    get pid() {
      return child?.pid
    },
    get restarts() {
      return restarts
    },
    nextStart: () => new Promise<number>((resolve) => waiters.push(resolve)),
    async stop(graceMs) {
      stopping = true
      if (restartTimer !== undefined) clearTimeout(restartTimer)
      const c = child
      if (c === undefined || c.exitCode !== null || c.signalCode !== null) return
      c.kill('SIGTERM')
      const timer = setTimeout(() => c.kill('SIGKILL'), graceMs)
      await exited
      clearTimeout(timer)
    },
  }
}
