// A piscina task: run one unit (the runtime-neutral runUnit) with the job types of the module the
// pool named in its `workerData` (`PoolRunnerInit.jobTypes`), or the built-in ones. Piscina awaits the
// default export before the thread takes tasks: a module that does not load, or lacks a kind the pool
// declared, fails the thread's start.
import { workerData } from 'piscina'
import { builtinJobTypes } from '../jobs/index.js'
import { loadJobTypes, type JobTypeRegistry } from './job-types-module.js'
import { runUnit, type RunOutcome, type RunTask } from './run-unit.js'

/** What the pool passes each thread. */
export interface UnitThreadData {
  jobTypes?: { url: string; kinds: string[] }
}

const data = (workerData ?? {}) as UnitThreadData
const registry: Promise<JobTypeRegistry> =
  data.jobTypes === undefined
    ? Promise.resolve(builtinJobTypes)
    : loadJobTypes(data.jobTypes.url, data.jobTypes.kinds)

export default registry.then(
  (r) =>
    (task: RunTask): Promise<RunOutcome> =>
      runUnit(task, r),
)
