// The coordinator's public surface.
export { createCoordinator, type Coordinator, type CoordinatorInit } from './coordinator.js'
export { DEFAULT_TUNING, resolveTuning, type CoordinatorTuning } from './options.js'
export type { Counters } from './counters.js'
export { jobView } from './http/jobs-routes.js'
export { contentSecurityPolicy, contributeMiddleware, type ContributeInit } from './http/contribute.js'
export { createStore, type JobRecord, type JobState, type Store, type WorkerStats } from './store/store.js'
export {
  ADMIN_QUOTA,
  ANONYMOUS_QUOTA,
  parseApiKeysFile,
  apiKeyDigest,
  SUBMITTER_QUOTA,
  type ApiKeySpec,
  type Quota,
} from './http/api-keys.js'
export type { Uploads, UploadKind } from './content/uploads.js'
export {
  credsFile,
  decodeJwtClaims,
  encodeJwt,
  keyPairFromSeed,
  parseCredsFile,
} from './credentials/nats-jwt.js'
export {
  createNatsTrust,
  issueCoordinatorUser,
  trustConfigLines,
  type NatsTrust,
} from './credentials/nats-trust.js'
export {
  createClientNetworkRules,
  DEFAULT_EXEMPT_NETWORKS,
  type ClientNetworkRules,
} from './credentials/client-network.js'
export {
  createVolunteerIssuer,
  volunteerPermissions,
  type VolunteerCredentials,
  type VolunteerIssuer,
} from './credentials/volunteer-issuer.js'
