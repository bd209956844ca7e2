// Untrusted job params (an HTTP body, a stored job) checked against the job type's schema, then
// completed by the job type: the one way params are parsed.
import type { AnyJobType, JobType } from '../../shared/index.js'
import { check } from './check.js'

/** The job type's params from `raw`; ValidationError names the field (`params.to`). */
export function parseParams<P>(jobType: JobType<P, any, any, any, any>, raw: unknown): P // eslint-disable-line @typescript-eslint/no-explicit-any
export function parseParams(jobType: AnyJobType, raw: unknown): unknown {
  return jobType.completeParams(check(jobType.paramsSchema, raw, 'params')) as unknown
}
