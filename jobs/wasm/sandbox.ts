// Running a checked WebAssembly module on records (docs/wasm.md, "ABI"). Each record gets a fresh
// instance and a fresh memory capped at the module's declared maximum, so records never share
// state and a module can neither read a clock nor reach the file system or the network: its only
// imports are the memory and a progress sink. A trap, a bad pointer or an oversized output becomes
// a deterministic `{ error }` result (every worker reports the same words for the same module and
// record); the time limit is enforced outside, by the runner that owns the thread.
import { throwIfAborted } from '../validate.js'
import { checkModule, DEFAULT_MODULE_LIMITS, type ModuleInfo } from './module-rules.js'

export type SandboxResult = { outputs: Uint8Array[] } | { error: string }

export interface SandboxOptions {
  /** Most output bytes for all records together. */
  maxOutputBytes: number
  signal?: AbortSignal
  /** Receives the module's `cohort.progress(permille)` calls, per record. */
  onProgress?: (record: number, permille: number) => void
}

const PAGE = 65_536
const MAX_COMPILED = 16
const compiled = new Map<string, { module: WebAssembly.Module; info: ModuleInfo }>()

/** The module for `hash`, compiled once per thread (the few most recent are kept). */
function load(hash: string, bytes: Uint8Array): { module: WebAssembly.Module; info: ModuleInfo } {
  let hit = compiled.get(hash)
  if (hit === undefined) {
    const info = checkModule(bytes, DEFAULT_MODULE_LIMITS)
    hit = { module: new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>), info }
    if (compiled.size >= MAX_COMPILED) compiled.delete(compiled.keys().next().value as string)
  } else compiled.delete(hash)
  compiled.set(hash, hit)
  return hit
}

/**
 * The spec's name for a trap, from the engine's error. Engines word traps differently; this is the
 * one place that reads their words, so every runtime reports the same reason.
 */
export function trapName(err: unknown): string | undefined {
  if (err instanceof RangeError && /call stack/i.test(err.message)) return 'call stack exhausted'
  if (!(err instanceof WebAssembly.RuntimeError)) return undefined
  const m = err.message.toLowerCase()
  const known: [RegExp, string][] = [
    [/unreachable/, 'unreachable'],
    [/memory access|out of bounds memory/, 'out of bounds memory access'],
    [/divide by zero|division by zero/, 'integer divide by zero'],
    [/unrepresentable|overflow/, 'integer overflow'],
    [/float.*integer|invalid conversion/, 'invalid conversion to integer'],
    [/signature|type mismatch|null function/, 'indirect call type mismatch'],
    [/table/, 'undefined table element'],
    [/call stack|stack overflow|recursion/, 'call stack exhausted'],
  ]
  return known.find(([re]) => re.test(m))?.[1] ?? 'trap'
}

class RecordError extends Error {}

function runRecord(
  module: WebAssembly.Module,
  info: ModuleInfo,
  record: Uint8Array,
  budget: number,
  progress: (permille: number) => void,
): Uint8Array | { error: string } {
  const memory = new WebAssembly.Memory({ initial: info.memory.min, maximum: info.memory.max })
  try {
    const instance = new WebAssembly.Instance(module, {
      cohort: { memory, progress: (p: number) => progress(p | 0) },
    })
    const { alloc, run } = instance.exports as {
      alloc: (len: number) => number
      run: (ptr: number, len: number) => bigint
    }
    const ptr = alloc(record.length) >>> 0
    if (ptr + record.length > memory.buffer.byteLength)
      throw new RecordError(`alloc(${record.length}) returned ${ptr | 0}, outside the memory`)
    new Uint8Array(memory.buffer, ptr, record.length).set(record)
    const packed = run(ptr, record.length)
    const outPtr = Number(BigInt.asUintN(32, packed >> 32n))
    const outLen = Number(BigInt.asUintN(32, packed))
    if (outLen > budget) throw new RecordError(`output of ${outLen} bytes exceeds what is left of the limit`)
    if (outPtr + outLen > memory.buffer.byteLength)
      throw new RecordError(`run returned output [${outPtr}, ${outPtr + outLen}) outside the memory`)
    return new Uint8Array(memory.buffer, outPtr, outLen).slice()
  } catch (err) {
    if (err instanceof RecordError) return { error: err.message }
    const trap = trapName(err)
    if (trap === undefined) throw err
    // The pages in use tell a memory bomb (memory.grow gives -1 past the maximum) from other traps.
    const pages = memory.buffer.byteLength / PAGE
    return { error: `trap: ${trap} (memory: ${pages} of ${info.memory.max} pages in use)` }
  }
}

/** Run the module on each record in order; the first record that fails fails the unit. */
export function runModule(
  hash: string,
  bytes: Uint8Array,
  records: Uint8Array[],
  opts: SandboxOptions,
): SandboxResult {
  const { module, info } = load(hash, bytes)
  const outputs: Uint8Array[] = []
  let left = opts.maxOutputBytes
  for (let i = 0; i < records.length; i++) {
    throwIfAborted(opts.signal)
    const out = runRecord(module, info, records[i] as Uint8Array, left, (p) => opts.onProgress?.(i, p))
    if (!(out instanceof Uint8Array)) return { error: `record ${i}: ${out.error}` }
    left -= out.length
    outputs.push(out)
  }
  return { outputs }
}
