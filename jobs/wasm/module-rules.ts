// The rules a WebAssembly module must pass before Cohort stores it or a worker runs it (docs/wasm.md):
// imports only from Cohort ("cohort".memory with a maximum within the cap, optionally
// "cohort".progress), no memory of its own and none exported, `alloc` and `run` exported with the
// ABI's signatures, no threads (shared memory, atomics) and no relaxed SIMD. Runtime-neutral.
import { CohortError } from '../../shared/index.js'
import { readWasm, WasmBinaryError, type FuncType, type WasmSummary } from './binary.js'

export type ModuleRule =
  | 'too-large'
  | 'malformed'
  | 'forbidden-import'
  | 'memory-import'
  | 'own-memory'
  | 'exported-memory'
  | 'missing-export'
  | 'threads'
  | 'relaxed-simd'
  | 'unsupported-instruction'
  | 'compile'

/** A module that breaks one of Cohort's rules; `rule` names it (it becomes the 422's `rule`). */
export class ModuleRuleError extends CohortError {
  override name = 'ModuleRuleError'
  constructor(
    readonly rule: ModuleRule,
    message: string,
  ) {
    super(message)
  }
}

export interface ModuleLimits {
  /** Largest module in bytes. Default 4 MiB. */
  maxBytes: number
  /** Largest memory maximum a module may declare, in 64 KiB pages. Default 256 (16 MiB). */
  maxPages: number
}

export const DEFAULT_MODULE_LIMITS: ModuleLimits = { maxBytes: 4 * 1024 * 1024, maxPages: 256 }

export interface ModuleInfo {
  /** The imported memory's declared limits, in pages. */
  memory: { min: number; max: number }
  /** Whether the module imports `cohort.progress`. */
  progress: boolean
  /** Instructions that compute on floats: their NaN bit patterns may differ between machines. */
  floatInstructions: number
  instructions: number
  /** Things that pass the rules but deserve the submitter's attention. */
  warnings: string[]
}

const sig = (t: FuncType): string => `(${t.params.join(', ')}) -> (${t.results.join(', ')})`
const same = (t: FuncType, params: string[], results: string[]): boolean =>
  sig(t) === sig({ params, results } as FuncType)

/** Check `bytes` against every rule except compiling (done by the caller, which may be async). */
export function checkModule(bytes: Uint8Array, limits: ModuleLimits = DEFAULT_MODULE_LIMITS): ModuleInfo {
  if (bytes.length > limits.maxBytes) {
    throw new ModuleRuleError('too-large', `module is ${bytes.length} bytes, more than ${limits.maxBytes}`)
  }
  let w: WasmSummary
  try {
    w = readWasm(bytes)
  } catch (err) {
    if (err instanceof WasmBinaryError) throw new ModuleRuleError(err.rule, err.message)
    throw err
  }
  let memory: ModuleInfo['memory'] | undefined
  let progress = false
  for (const imp of w.imports) {
    const what = `import "${imp.module}"."${imp.name}" (${imp.kind})`
    if (imp.module !== 'cohort') {
      throw new ModuleRuleError('forbidden-import', `${what}: modules may import only from "cohort"`)
    }
    if (imp.name === 'memory' && imp.kind === 'memory') {
      const l = imp.limits
      if (l.shared) throw new ModuleRuleError('threads', `${what} is shared memory (threads)`)
      if (l.memory64) throw new ModuleRuleError('memory-import', `${what} is a 64-bit memory`)
      if (l.max === undefined)
        throw new ModuleRuleError('memory-import', `${what} declares no maximum; declare one`)
      if (l.max > limits.maxPages) {
        throw new ModuleRuleError(
          'memory-import',
          `${what} declares a maximum of ${l.max} pages, more than the cap of ${limits.maxPages} pages (${limits.maxPages / 16} MiB)`,
        )
      }
      memory = { min: l.min, max: l.max }
    } else if (imp.name === 'progress' && imp.kind === 'func') {
      if (!same(imp.type, ['i32'], []))
        throw new ModuleRuleError(
          'forbidden-import',
          `${what} must have type (i32) -> (), not ${sig(imp.type)}`,
        )
      progress = true
    } else {
      throw new ModuleRuleError(
        'forbidden-import',
        `${what}: Cohort provides only "cohort"."memory" (memory) and "cohort"."progress" (func)`,
      )
    }
  }
  if (w.ownMemories > 0) {
    throw new ModuleRuleError(
      'own-memory',
      'the module defines its own memory; import "cohort"."memory" instead (so Cohort sets its cap)',
    )
  }
  if (memory === undefined)
    throw new ModuleRuleError('memory-import', 'the module must import "cohort"."memory" with a maximum')
  const exported = w.exports.find((e) => e.kind === 'memory')
  if (exported !== undefined)
    throw new ModuleRuleError('exported-memory', `the module exports its memory as "${exported.name}"`)
  const wants: [string, string[], string[]][] = [
    ['alloc', ['i32'], ['i32']],
    ['run', ['i32', 'i32'], ['i64']],
  ]
  for (const [name, params, results] of wants) {
    const e = w.exports.find((x) => x.name === name)
    const t = e?.kind === 'func' ? w.functions[e.index] : undefined
    if (t === undefined || !same(t, params, results)) {
      throw new ModuleRuleError(
        'missing-export',
        `the module must export function "${name}" of type ${sig({ params, results } as FuncType)}${t === undefined ? '' : `, not ${sig(t)}`}`,
      )
    }
  }
  const warnings: string[] = []
  if (w.floatInstructions > 0) {
    warnings.push(
      `${w.floatInstructions} float instructions: float results are deterministic except NaN bit patterns; canonicalise NaNs before writing them to the output`,
    )
  }
  return { memory, progress, floatInstructions: w.floatInstructions, instructions: w.instructions, warnings }
}

/** `checkModule`, then compile: a module V8 refuses fails the `compile` rule. */
export async function validateModule(
  bytes: Uint8Array,
  limits: ModuleLimits = DEFAULT_MODULE_LIMITS,
): Promise<ModuleInfo> {
  const info = checkModule(bytes, limits)
  try {
    await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>)
  } catch (err) {
    throw new ModuleRuleError('compile', `the module does not compile: ${(err as Error).message}`)
  }
  return info
}
