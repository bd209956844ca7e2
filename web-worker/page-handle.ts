// `window.cohort`: what the page shows, as data, for scripts and tests driving the page (Playwright),
// and a way to run built-in units on this browser's Web Workers without the network (the
// cross-runtime conformance check and the browser benchmark use it).
import type { RunTask, WorkerStats } from '../worker/portable.js'
import { createComlinkRunner } from './comlink-runner.js'
import type { ContributorPeer, ContributorState, PauseReason } from './contributor.js'

export interface PageSnapshot {
  /** This browser's contributor id (base64url Ed25519 public key). */
  id: string
  state: ContributorState
  reasons: PauseReason[]
  threads: number
  /** The daemon's counters, once started. */
  stats: WorkerStats | undefined
  /** `name@version` of the unit started last. */
  kind: string | undefined
  /** Peers this browser knows now, and the units each would take (empty before it connects). */
  peers: ContributorPeer[]
}

export interface LocalRun {
  /** Wall time from the first task handed to a Web Worker to the last result, in ms. */
  ms: number
  outcomes: { digest: string; computeMs: number }[]
}

export interface PageHandle {
  readonly id: string
  snapshot(): PageSnapshot
  /** Run `tasks` on a fresh pool of `threads` Web Workers (loaded before the clock starts). */
  runLocal(tasks: RunTask[], threads: number): Promise<LocalRun>
}

declare global {
  interface Window {
    cohort?: PageHandle
  }
}

export function createPageHandle(id: string, snapshot: () => PageSnapshot, workerUrl: URL): PageHandle {
  return {
    id,
    snapshot,
    async runLocal(tasks, threads) {
      const runner = createComlinkRunner({ workerUrl, threads })
      const signal = new AbortController().signal
      try {
        // One tiny unit per Web Worker first, so module loading is not timed.
        const warm = { kind: 'primes@1', input: { from: 0, to: 1000 } }
        await Promise.all(Array.from({ length: threads }, () => runner.run(warm, signal)))
        const started = performance.now()
        const outcomes = await Promise.all(tasks.map((t) => runner.run(t, signal)))
        return {
          ms: performance.now() - started,
          outcomes: outcomes.map((o) => ({ digest: o.digest, computeMs: o.computeMs })),
        }
      } finally {
        await runner.close()
      }
    },
  }
}
