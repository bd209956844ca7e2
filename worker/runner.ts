// Running units: the Runner contract, and the default runner on a piscina thread pool.
import { availableParallelism } from 'node:os'
import type { MessagePort as NodeMessagePort } from 'node:worker_threads'
import { Piscina } from 'piscina'
import { builtinJobTypes } from '../jobs/index.js'
import type { JobTypesModule } from './job-types-module.js'
import type { RunOutcome, RunTask } from './run-unit.js'
import type { UnitThreadData } from './unit-thread.js'
import { wireTask, type RunControl, type RunHooks } from './policy/run-control.js'

export type { RunOutcome, RunTask } from './run-unit.js'

/** Runs units; the daemon only talks to this, so tests can wrap it (misbehaving workers). */
export interface Runner {
  /** Units it runs at once. May change while the daemon runs (the browser's threads slider). */
  readonly threads: number
  /** The kinds (`name@version`) it can run; a daemon refuses job types outside them. */
  readonly kinds: ReadonlySet<string>
  /** `hooks`: progress, checkpoints and resuming, for runners that support them (others ignore it). */
  run(task: RunTask, signal: AbortSignal, hooks?: RunHooks): Promise<RunOutcome>
  close(): Promise<void>
}

export interface PoolRunnerInit {
  /** Threads; default: the machine's cores. */
  threads?: number
  /** Per-thread heap limit in MiB (V8 old space). Default 512. */
  maxHeapMb?: number
  /** Shared pause / duty-cycle word (worker/policy); without it kernels never block or checkpoint. */
  control?: RunControl
  /**
   * The job types the threads run: a module each thread imports (threads cannot be given functions).
   * Default: the built-in job types (jobs/index.ts).
   */
  jobTypes?: JobTypesModule
}

export function createPoolRunner(init: PoolRunnerInit = {}): Runner {
  const threads = init.threads ?? availableParallelism()
  const kinds: ReadonlySet<string> = new Set(init.jobTypes?.kinds ?? builtinJobTypes.keys())
  const workerData: UnitThreadData =
    init.jobTypes === undefined ? {} : { jobTypes: { url: String(init.jobTypes.url), kinds: [...kinds] } }
  const pool = new Piscina({
    filename: new URL('./unit-thread.js', import.meta.url).href,
    workerData,
    minThreads: threads,
    maxThreads: threads,
    idleTimeout: 60_000,
    resourceLimits: { maxOldGenerationSizeMb: init.maxHeapMb ?? 512 },
  })
  return {
    threads,
    kinds,
    async run(task, signal, hooks) {
      if (init.control === undefined) return (await pool.run(task, { signal })) as RunOutcome
      const wired = wireTask(task, init.control, hooks)
      try {
        // Node's global MessageChannel is worker_threads' one; the DOM typing differs only in name.
        const transferList = wired.transferList as unknown as NodeMessagePort[]
        return (await pool.run(wired.task, { signal, transferList })) as RunOutcome
      } finally {
        await wired.close()
      }
    },
    async close() {
      await pool.close({ force: true })
    },
  }
}
