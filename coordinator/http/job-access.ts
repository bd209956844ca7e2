// Which jobs a caller may see: its own, or any for an admin. Others' jobs are as absent as unknown
// ones (the same 404), so job ids reveal nothing about other owners.
import { ID_PATTERN } from '../../shared/index.js'
import type { JobRecord, Store } from '../store/store.js'
import type { Caller } from './auth.js'
import { HttpError } from './http-error.js'

export function jobLoader(store: Pick<Store, 'getJob'>) {
  return async (id: string, caller: Caller): Promise<JobRecord> => {
    const missing = new HttpError(404, 'job-not-found', `no job with id "${id}"`)
    if (!ID_PATTERN.test(id)) throw missing
    const job = await store.getJob(id)
    if (job === undefined || (!caller.admin && job.owner !== caller.owner)) throw missing
    return job
  }
}
