// Params and results of the built-in job types, by type name: `submit({ type: 'primes', params })`
// checks params at compile time and `result()` is typed. Taken from the job types themselves
// (jobs/*.ts, types only: nothing of them is bundled); params the job type fills in are optional.
import type {
  KnnParams,
  KnnResult,
  NQueensParams,
  NQueensResult,
  PrimesParams,
  PrimesResult,
  WasmBlobSplit,
  WasmParams,
  WasmResult,
} from '../jobs/index.js'

/** `P` with the keys `K` (those the job type fills in by default) optional. */
type Defaulted<P, K extends keyof P> = Omit<P, K> & Partial<Pick<P, K>>

export interface JobTypeMap {
  primes: { params: Defaulted<PrimesParams, 'from' | 'unitSize'>; result: PrimesResult }
  nqueens: { params: Defaulted<NQueensParams, 'depth'>; result: NQueensResult }
  knn: {
    params: Omit<Defaulted<KnnParams, 'queriesPerUnit'>, 'queries'> & {
      queries: Defaulted<KnnParams['queries'], 'seed'>
    }
    result: KnnResult
  }
  wasm: {
    params: Omit<Defaulted<WasmParams, 'recordsPerUnit' | 'timeLimitMs' | 'merge' | 'compare'>, 'input'> & {
      input:
        | { records: string[]; encoding?: 'base64' | 'utf8' }
        | { range: { from: number; to: number; step?: number } }
        | { blob: string; split: WasmBlobSplit }
    }
    result: WasmResult
  }
}

/** A job type's params: typed for the built-in ones, any JSON object for others. */
export type ParamsOf<T extends string> = T extends keyof JobTypeMap
  ? JobTypeMap[T]['params']
  : Record<string, unknown>

/** A job type's result: typed for the built-in ones. */
export type ResultOf<T extends string> = T extends keyof JobTypeMap ? JobTypeMap[T]['result'] : unknown

/** What POST /v1/jobs takes. */
export interface SubmitRequest<T extends string = string> {
  type: T
  /** A version of the type (default: its latest). */
  version?: number
  params: ParamsOf<T>
  /** How results are cross-checked (docs/security.md); the coordinator's defaults fill the rest. */
  redundancy?: { quorum?: number; maxReplicas?: number; minCredibility?: number; spotCheckRate?: number }
  /** -100..100, higher first. */
  priority?: number
  /** The planner's target seconds per unit. */
  plan?: { unitSeconds?: number }
}
