// The worker daemon's public surface: the runtime-neutral part (portable.ts, which the browser
// imports) plus the Node-side pieces: the piscina pool, the identity key file, the module cache.
export * from './portable.js'
export { createPoolRunner, type PoolRunnerInit } from './runner.js'
export { loadIdentity, loadOrCreateIdentity } from './identity-file.js'
export { createCredentialFile, credentialFileFor } from './credential-file.js'
export { CoordinatorUnavailableError } from './coordinator-client.js'
export {
  createModuleCache,
  ModuleIntegrityError,
  type ModuleCache,
  type ModuleCacheInit,
  type ModuleCacheStats,
} from './module-cache.js'
export { withUnitResources, type UnitResourcesInit } from './unit-resources.js'
