// The browser contributor's public surface (the page itself starts from page.ts).
export { createComlinkRunner, MAX_THREADS, UnitWorkerError, type ComlinkRunner } from './comlink-runner.js'
export {
  createContributor,
  type Contributor,
  type ContributorPeer,
  type ContributorState,
  type PauseReason,
} from './contributor.js'
export type { LocalRun, PageHandle, PageSnapshot } from './page-handle.js'
export type { UnitWorkerApi } from './unit-worker-api.js'
