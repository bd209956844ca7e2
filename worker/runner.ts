// Running units: the Runner contract, and the default runner on a piscina thread pool.
import { availableParallelism } from 'node:os'
import { Piscina } from 'piscina'
import type { RunOutcome, RunTask } from './run-unit.js'

export type { RunOutcome, RunTask } from './run-unit.js'

/** Runs units; the daemon only talks to this, so tests can wrap it (misbehaving workers). */
export interface Runner {
  /** Units it runs at once. May change while the daemon runs (the browser's threads slider). */
  readonly threads: number
  run(task: RunTask, signal: AbortSignal): Promise<RunOutcome>
  close(): Promise<void>
}

export interface PoolRunnerInit {
  /** Threads; default: the machine's cores. */
  threads?: number
  /** Per-thread heap limit in MiB (V8 old space). Default 512. */
  maxHeapMb?: number
}

export function createPoolRunner(init: PoolRunnerInit = {}): Runner {
  const threads = init.threads ?? availableParallelism()
  const pool = new Piscina({
    filename: new URL('./unit-thread.js', import.meta.url).href,
    minThreads: threads,
    maxThreads: threads,
    idleTimeout: 60_000,
    resourceLimits: { maxOldGenerationSizeMb: init.maxHeapMb ?? 512 },
  })
  return {
    threads,
    async run(task, signal) {
      return (await pool.run(task, { signal })) as RunOutcome
    },
    async close() {
      await pool.close({ force: true })
    },
  }
}
