// The Cohort client: `import { connect } from 'cohort/client'`. Runs in Node and browsers (fetch only).
export { connect, type Client, type ConnectOptions, type SubmittedJob } from './client.js'
export { ApiError, ConnectionError } from './http.js'
export type { FollowOptions } from './events.js'
export { JobFailedError, JobHandle, type JobHandleEvents, type JobHandleOptions } from './job-handle.js'
export type { JobTypeMap, ParamsOf, ResultOf, SubmitRequest } from './job-types.js'
export type { UploadBody, UploadOptions } from './upload.js'
export {
  CohortError,
  TimeoutError,
  type BlobView,
  type DatasetView,
  type JobEvent,
  type JobEventMap,
  type JobEventType,
  type JobStateName,
  type JobTypeView,
  type JobView,
  type ModuleView,
  type ResultView,
  type RevisionView,
  type UnitCounts,
} from '../shared/index.js'
