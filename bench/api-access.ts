// How the benchmarks use a coordinator's HTTP API: without an API key, as the owner `anonymous`, with
// no quota (jobs of thousands of units, datasets of 64 MiB and more). Quotas are not what they measure.
import type { CoordinatorTuning } from '../coordinator/index.js'

export const BENCH_API_TUNING: Pick<CoordinatorTuning, 'anonymous' | 'anonymousQuota'> = {
  anonymous: true,
  anonymousQuota: { unitsInFlight: null, storedBytes: null, requestsPerMinute: null, maxPriority: 0 },
}
