// The built-in job types, keyed by kind (`name@version`), and lookups over them.
import { kindOf, type AnyJobType } from '../shared/job-type.js'
import { knn } from './knn.js'
import { nqueens } from './nqueens.js'
import { primes } from './primes.js'
export {
  wasm,
  MAX_UNIT_OUTPUT_BYTES,
  type WasmBlobSplit,
  type WasmInput,
  type WasmMerge,
  type WasmOutput,
  type WasmParams,
  type WasmResult,
} from './wasm.js'
export {
  checkModule,
  validateModule,
  DEFAULT_MODULE_LIMITS,
  ModuleRuleError,
  type ModuleInfo,
  type ModuleLimits,
  type ModuleRule,
} from './wasm/module-rules.js'
import { wasm } from './wasm.js'

export { knn, type KnnInput, type KnnOutput, type KnnParams, type KnnResult } from './knn.js'
export { knnDataset, knnQuery } from './knn-data.js'
export {
  nqueens,
  type NQueensInput,
  type NQueensOutput,
  type NQueensParams,
  type NQueensResult,
} from './nqueens.js'
export {
  primes,
  type PrimesInput,
  type PrimesOutput,
  type PrimesParams,
  type PrimesResult,
} from './primes.js'

const all: readonly AnyJobType[] = [primes, nqueens, wasm, knn]

/** Every built-in job type, keyed by `kindOf(type)`, e.g. `primes@1`. */
export const builtinJobTypes: ReadonlyMap<string, AnyJobType> = new Map(all.map((t) => [kindOf(t), t]))

/** The job type with this name and version; the latest version of the name when `version` is omitted. */
export function findJobType(name: string, version?: number): AnyJobType | undefined {
  if (version !== undefined) return builtinJobTypes.get(kindOf({ name, version }))
  let latest: AnyJobType | undefined
  for (const t of builtinJobTypes.values()) {
    if (t.name === name && (latest === undefined || t.version > latest.version)) latest = t
  }
  return latest
}

/** Every built-in job type, sorted by name, then version. */
export function listJobTypes(): AnyJobType[] {
  return [...builtinJobTypes.values()].sort((a, b) =>
    a.name === b.name ? a.version - b.version : a.name < b.name ? -1 : 1,
  )
}
