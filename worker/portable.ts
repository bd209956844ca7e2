// The daemon's runtime-neutral surface: everything here runs in Node and in browsers (no `node:`
// imports), so the browser contributor imports this file, not index.ts (which adds the piscina pool
// and the identity key file).
export {
  createWorkerDaemon,
  type StopOptions,
  type WorkerDaemon,
  type WorkerDaemonInit,
  type WorkerEvents,
  type WorkerStats,
} from './daemon.js'
export { runUnit, type RunOutcome, type RunTask } from './run-unit.js'
export { loadJobTypes, registryOf, type JobTypeRegistry, type JobTypesModule } from './job-types-module.js'
export type { Runner } from './runner.js'
export { trustedKeysFrom, verifyUnit, type TrustedKeys } from './unit-verifier.js'
export {
  createCoordinatorClient,
  OverBudgetError,
  RequestRefusedError,
  type CoordinatorClient,
  type DataNeed,
} from './coordinator-client.js'
export * from './peer/index.js'
export { signUp, SignupError, type SignUpOptions } from './signup-client.js'
export { createStandingPoller, type StandingPoller, type StandingPollerInit } from './standing-poller.js'
export { claimStanding, fetchStanding, StandingError, type StandingOptions } from './standing-client.js'
export {
  connectWithCredentials,
  createMemoryCredentialStore,
  createVolunteerCredentials,
  type CredentialStore,
  type StoredCredentials,
  type VolunteerCredentials,
  type VolunteerCredentialsInit,
} from './volunteer-credentials.js'
