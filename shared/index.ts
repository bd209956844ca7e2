// Contracts shared by coordinator, worker daemon and browser: explicit export list.
export {
  concatBytes,
  equalBytes,
  fromBase64Url,
  fromHex,
  fromUtf8,
  randomBytes,
  randomId,
  toBase64Url,
  toHex,
  utf8,
} from './bytes.js'
export { decode, encode, MAX_MESSAGE_BYTES } from './codec.js'
export {
  Bitfield,
  CHUNK_BYTES,
  chunkCount,
  chunkHash,
  chunkRange,
  decodeManifest,
  encodeManifest,
  manifestOf,
  MAX_CONTENT_BYTES,
  MAX_CONTENT_CHUNKS,
  MAX_MANIFEST_BYTES,
  parseContentRef,
  parseManifest,
  type ContentRef,
  type Manifest,
} from './content.js'
export { checkWsUrl, parseContributeConfig, type ContributeConfig } from './contribute-config.js'
export { DIGEST_HEX, sha256Hex } from './digest.js'
export {
  CohortError,
  ConfigError,
  ExpiredError,
  LimitError,
  ProtocolError,
  SignatureError,
  TimeoutError,
  UnrecoverableError,
  ValidationError,
} from './errors.js'
export * from './volunteer-signup.js'
export { checkPow, MAX_POW_BITS, powHash, powPrefix, solvePow, type SolveOptions } from './proof-of-work.js'
export {
  kindOf,
  type AnyJobType,
  type CostEstimate,
  type Granularity,
  type JobType,
  type PlanResource,
  type RunContext,
} from './job-type.js'
export * from './protocol.js'
export { natsServers } from './nats-servers.js'
export * from './ops-views.js'
export {
  compareStreamIds,
  eventFromEntry,
  FINAL_STATES,
  JOB_STATES,
  STREAM_ID,
  toJobEvent,
  type JobEvent,
  type JobEventMap,
  type JobEventType,
  type JobStateName,
  type UnitCounts,
} from './job-events.js'
export * from './peer-protocol.js'
export {
  MAX_BATCH_DEPTH,
  openUnit,
  parseUnitEnvelope,
  sealUnits,
  type BatchProof,
  type UnitEnvelope,
} from './unit-batch.js'
export {
  exportIdentity,
  generateIdentity,
  importIdentity,
  keyIdOf,
  open,
  parseEnvelope,
  seal,
  sign,
  signDetached,
  verify,
  verifyDetached,
  PUBLIC_KEY_BYTES,
  SIGNATURE_BYTES,
  type Identity,
  type IdentityFile,
  type SignedEnvelope,
  type SignedKind,
} from './signing.js'
export { expectRecord, intField, stringField, type Rec } from './schema.js'
export {
  createLogger,
  errorFields,
  silentLogger,
  type LogFields,
  type Logger,
  type LogLevel,
  type LogRecord,
  type LogSink,
} from './logger.js'
export { Emitter, type EventMap } from './emitter.js'
export type {
  BlobView,
  DatasetView,
  JobTypeView,
  JobView,
  ModuleView,
  PlanView as JobPlanView,
  ResultView,
  RevisionView,
} from './api-views.js'
export * from './volunteer-claim.js'
export * from './volunteer-views.js'
