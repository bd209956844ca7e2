// The worker daemon's public surface.
export {
  createWorkerDaemon,
  type StopOptions,
  type WorkerDaemon,
  type WorkerDaemonInit,
  type WorkerEvents,
  type WorkerStats,
} from './daemon.js'
export {
  createPoolRunner,
  type PoolRunnerInit,
  type Runner,
  type RunOutcome,
  type RunTask,
} from './runner.js'
export { runUnit } from './run-unit.js'
export { trustedKeysFrom, verifyUnit, type TrustedKeys } from './unit-verifier.js'
export { loadOrCreateIdentity } from './identity-file.js'
export {
  CoordinatorUnavailableError,
  createCoordinatorClient,
  RequestRefusedError,
  type CoordinatorClient,
} from './coordinator-client.js'
export {
  createModuleCache,
  ModuleIntegrityError,
  type ModuleCache,
  type ModuleCacheInit,
  type ModuleCacheStats,
} from './module-cache.js'
export { withUnitResources, type UnitResourcesInit } from './unit-resources.js'
