// What each unit Web Worker exposes to the page through comlink.
import type { RunOutcome, RunTask } from '../worker/portable.js'

export interface UnitWorkerApi {
  /** Run one unit of a built-in job type: the same runUnit as the daemon's piscina threads. */
  run(task: RunTask): Promise<RunOutcome>
}
