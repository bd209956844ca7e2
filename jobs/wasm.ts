// Job type `wasm@1`: run a submitter's WebAssembly module (uploaded with POST /v1/modules, named by
// its SHA-256) on records: an inline list, the sub-ranges of an integer range, or the lines or fixed-size
// pieces of an uploaded blob (POST /v1/blobs; split by the coordinator, so units carry the records
// inline like any others). Each unit is a few
// records; the worker fetches the module by hash (the hash is in the signed unit, so a worker runs
// only what the coordinator signed for) and runs it in the sandbox of jobs/wasm/sandbox.ts.
// docs/wasm.md has the ABI, the rules and the failure model.
import { fromBase64Url, toBase64Url, UnrecoverableError, ValidationError } from '../shared/index.js'
import type { JobType } from '../shared/job-type.js'
import { fromBase64, toBase64 } from './wasm/base64.js'
import { runModule } from './wasm/sandbox.js'
import { Closed, HASH_PATTERN, StringEnum, T, type Static } from './schema.js'
import { readInt, readRecord, type Fields } from './validate.js'

export type WasmMerge = 'list' | 'concat' | 'sum-u64'

/** How a blob becomes records: its lines (without the `\n`), or pieces of `bytes` bytes. */
export type WasmBlobSplit = 'lines' | { bytes: number }

export interface WasmParams {
  /** SHA-256 hex of the module. */
  module: string
  input:
    | { records: string[]; encoding: 'base64' | 'utf8' }
    | { range: { from: number; to: number; step: number } }
    | { blob: string; split: WasmBlobSplit }
  recordsPerUnit: number
  timeLimitMs: number
  merge: WasmMerge
  compare: 'exact'
}

export interface WasmInput {
  module: string
  /** base64url of each record. */
  records: string[]
  timeLimitMs: number
}

export type WasmOutput = { outputs: Uint8Array[] } | { error: string }

export type WasmResult =
  | { records: number; outputs: string[] }
  | { records: number; output: string }
  | { records: number; sum: string }

const HASH = /^[0-9a-f]{64}$/
const MAX_UNITS = 100_000
const MAX_RECORDS_PER_UNIT = 4096
const MAX_INLINE_RECORDS = 100_000
/** Largest record, in bytes. */
const MAX_RECORD_BYTES = 64 * 1024
/** Largest sum of one unit's records (base64url characters), well within a signed unit's limit. */
const MAX_UNIT_INPUT_CHARS = 192 * 1024
/** Largest sum of one unit's outputs; the rest of the 1 MiB result limit is left for the envelope. */
export const MAX_UNIT_OUTPUT_BYTES = 768 * 1024
const TIME_LIMIT = { min: 100, max: 120_000, fallback: 10_000 }
const MERGES: readonly WasmMerge[] = ['list', 'concat', 'sum-u64']

function readHash(rec: Fields, path: string): string {
  const v = rec['module']
  if (typeof v !== 'string' || !HASH.test(v))
    throw new ValidationError(
      `${path}.module`,
      'must be the SHA-256 hex of an uploaded module (64 lowercase hex digits)',
    )
  return v
}

/** The records of a blob: its lines without the `\n` (a final `\n` ends the last line), or pieces. */
export function splitBlob(bytes: Uint8Array, split: WasmBlobSplit): Uint8Array[] {
  const out: Uint8Array[] = []
  if (split === 'lines') {
    let start = 0
    while (start < bytes.length) {
      const nl = bytes.indexOf(0x0a, start)
      const end = nl === -1 ? bytes.length : nl
      out.push(bytes.subarray(start, end))
      start = end + 1
    }
  } else {
    for (let i = 0; i < bytes.length; i += split.bytes) out.push(bytes.subarray(i, i + split.bytes))
  }
  return out
}

/** Refuses records that would put more than MAX_UNIT_INPUT_CHARS of base64url in one unit. */
function checkUnitSizes(byteSizes: number[], recordsPerUnit: number): void {
  for (let i = 0; i < byteSizes.length; i += recordsPerUnit) {
    const chars = byteSizes.slice(i, i + recordsPerUnit).reduce((n, b) => n + Math.ceil((b * 4) / 3), 0)
    if (chars > MAX_UNIT_INPUT_CHARS) {
      throw new ValidationError(
        'params.recordsPerUnit',
        `puts more than ${(MAX_UNIT_INPUT_CHARS * 3) / 4} bytes of records in one unit`,
      )
    }
  }
}

function recordBytes(p: WasmParams, i: number): Uint8Array {
  if ('blob' in p.input) throw new Error('blob records come from splitBlob')
  if ('range' in p.input) {
    const { from, to, step } = p.input.range
    const start = from + i * step
    const out = new Uint8Array(16)
    const view = new DataView(out.buffer)
    view.setBigInt64(0, BigInt(start), true)
    view.setBigInt64(8, BigInt(Math.min(to, start + step)), true)
    return out
  }
  const r = p.input.records[i] as string
  return p.input.encoding === 'utf8' ? new TextEncoder().encode(r) : fromBase64(r)
}

/** Records of an inline or range input; a blob's are known only once it is split (0 here). */
const recordCount = (p: WasmParams): number =>
  'range' in p.input
    ? Math.ceil((p.input.range.to - p.input.range.from) / p.input.range.step)
    : 'records' in p.input
      ? p.input.records.length
      : 0

const unitCount = (p: WasmParams): number => Math.ceil(recordCount(p) / p.recordsPerUnit)

const hash = (what: string) =>
  T.String({
    pattern: HASH_PATTERN,
    description: `SHA-256 hex of ${what}`,
    'x-message': `must be the SHA-256 hex of ${what} (64 lowercase hex digits)`,
  })

const paramsSchema = Closed({
  module: hash('a module uploaded with POST /v1/modules'),
  input: T.Union(
    [
      Closed(
        {
          records: T.Array(T.String(), { minItems: 1, maxItems: MAX_INLINE_RECORDS }),
          encoding: T.Optional(StringEnum(['base64', 'utf8'], { default: 'base64' })),
        },
        { description: 'Inline records' },
      ),
      Closed(
        {
          range: Closed({
            from: T.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER - 1 }),
            to: T.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
            step: T.Optional(
              T.Integer({
                minimum: 1,
                maximum: Number.MAX_SAFE_INTEGER,
                description: 'default: to - from (one record)',
              }),
            ),
          }),
        },
        { description: 'Records [x, min(x+step, to)) as two little-endian i64' },
      ),
      Closed(
        {
          blob: hash('a blob uploaded with POST /v1/blobs'),
          split: T.Union(
            [T.Literal('lines'), Closed({ bytes: T.Integer({ minimum: 1, maximum: MAX_RECORD_BYTES }) })],
            {
              description: '"lines": one record per line, without the newline; {bytes}: pieces of that size',
              'x-message': 'must be "lines" or {"bytes": n}',
            },
          ),
        },
        { description: 'The lines or fixed-size pieces of an uploaded blob' },
      ),
    ],
    {
      description: 'records: inline records; range: sub-ranges of integers; blob: pieces of an uploaded blob',
    },
  ),
  recordsPerUnit: T.Optional(T.Integer({ minimum: 1, maximum: MAX_RECORDS_PER_UNIT, default: 1 })),
  timeLimitMs: T.Optional(
    T.Integer({
      minimum: TIME_LIMIT.min,
      maximum: TIME_LIMIT.max,
      default: TIME_LIMIT.fallback,
      description: 'Wall-clock limit per unit; a unit past it fails with "time limit"',
    }),
  ),
  merge: T.Optional(
    StringEnum(MERGES, { default: 'list', description: 'How unit outputs become the result' }),
  ),
  compare: T.Optional(
    StringEnum(['exact'], { default: 'exact', description: 'Outputs agree when byte-identical' }),
  ),
})

/** What a submitter sends. */
export type WasmRequest = Static<typeof paramsSchema>

/** The input the schema accepted, completed: the range's step, each record's size and encoding checked. */
function completeInput(given: WasmRequest['input']): WasmParams['input'] {
  if ('blob' in given) return { blob: given.blob, split: given.split }
  if ('range' in given) {
    const { from, to } = given.range
    if (from >= to)
      throw new ValidationError('params.input.range.from', 'must be less than params.input.range.to')
    return { range: { from, to, step: given.range.step ?? to - from } }
  }
  const encoding = given.encoding ?? 'base64'
  given.records.forEach((item, i) => {
    const field = `params.input.records[${i}]`
    let n: number
    try {
      n = encoding === 'utf8' ? new TextEncoder().encode(item).length : fromBase64(item).length
    } catch {
      throw new ValidationError(field, 'must be base64')
    }
    if (n > MAX_RECORD_BYTES) throw new ValidationError(field, `must be at most ${MAX_RECORD_BYTES} bytes`)
  })
  return { records: given.records, encoding }
}

function sumU64(outputs: Uint8Array[]): string {
  let sum = 0n
  outputs.forEach((o, i) => {
    if (o.length !== 8) throw new UnrecoverableError(`merge sum-u64: output ${i} is ${o.length} bytes, not 8`)
    sum += new DataView(o.buffer, o.byteOffset, 8).getBigUint64(0, true)
  })
  return sum.toString()
}

export const wasm: JobType<WasmParams, WasmInput, WasmOutput, WasmResult, WasmRequest> = {
  name: 'wasm',
  version: 1,
  description:
    'Run an uploaded WebAssembly module (POST /v1/modules) on records: an inline list, the sub-ranges of an integer range, or the lines or pieces of an uploaded blob (POST /v1/blobs).',
  paramsSchema,
  maxUnits: MAX_UNITS,

  completeParams(given) {
    const params: WasmParams = {
      module: given.module,
      input: completeInput(given.input),
      recordsPerUnit: given.recordsPerUnit ?? 1,
      timeLimitMs: given.timeLimitMs ?? TIME_LIMIT.fallback,
      merge: given.merge ?? 'list',
      compare: given.compare ?? 'exact',
    }
    if (unitCount(params) > MAX_UNITS) {
      throw new ValidationError(
        'params.recordsPerUnit',
        `gives ${unitCount(params)} units, more than ${MAX_UNITS}; use at least ${Math.ceil(recordCount(params) / MAX_UNITS)}`,
      )
    }
    if ('records' in params.input)
      checkUnitSizes(
        params.input.records.map((_, i) => recordBytes(params, i).length),
        params.recordsPerUnit,
      )
    return params
  },

  estimateCost(params) {
    return {
      // A blob's unit count is known only once split (planResources): at least one.
      units: Math.max(1, unitCount(params)),
      unitSeconds: Math.min(params.timeLimitMs / 1000, 0.01 * params.recordsPerUnit),
    }
  },

  planResources: (params) => ('blob' in params.input ? [params.input.blob] : []),

  split(params, resource) {
    if ('blob' in params.input) {
      const { blob, split } = params.input
      const bytes = resource?.(blob)
      if (bytes === undefined)
        throw new ValidationError(
          'params.input.blob',
          `no blob with hash ${blob}; upload it with POST /v1/blobs`,
        )
      const records = splitBlob(bytes, split)
      if (records.length === 0)
        throw new ValidationError('params.input.blob', 'is empty: it gives no records')
      records.forEach((r, i) => {
        if (r.length > MAX_RECORD_BYTES)
          throw new ValidationError(
            'params.input.blob',
            `line ${i + 1} is ${r.length} bytes; records must be at most ${MAX_RECORD_BYTES} bytes`,
          )
      })
      const units = Math.ceil(records.length / params.recordsPerUnit)
      if (units > MAX_UNITS)
        throw new ValidationError(
          'params.recordsPerUnit',
          `gives ${units} units, more than ${MAX_UNITS}; use at least ${Math.ceil(records.length / MAX_UNITS)}`,
        )
      checkUnitSizes(
        records.map((r) => r.length),
        params.recordsPerUnit,
      )
      const inputs: WasmInput[] = []
      for (let i = 0; i < records.length; i += params.recordsPerUnit)
        inputs.push({
          module: params.module,
          records: records.slice(i, i + params.recordsPerUnit).map(toBase64Url),
          timeLimitMs: params.timeLimitMs,
        })
      return inputs
    }
    const n = recordCount(params)
    const inputs: WasmInput[] = []
    for (let i = 0; i < n; i += params.recordsPerUnit) {
      const records: string[] = []
      for (let k = i; k < Math.min(n, i + params.recordsPerUnit); k++)
        records.push(toBase64Url(recordBytes(params, k)))
      inputs.push({ module: params.module, records, timeLimitMs: params.timeLimitMs })
    }
    return inputs
  },

  parseInput(raw) {
    const rec = readRecord(raw, 'input', ['module', 'records', 'timeLimitMs'])
    const records = rec['records']
    if (!Array.isArray(records) || records.length === 0 || records.length > MAX_RECORDS_PER_UNIT)
      throw new ValidationError(
        'input.records',
        `must be a list of 1..${MAX_RECORDS_PER_UNIT} base64url strings`,
      )
    let chars = 0
    records.forEach((r: unknown, i) => {
      if (typeof r !== 'string' || !/^[A-Za-z0-9_-]*$/.test(r) || r.length % 4 === 1)
        throw new ValidationError(`input.records[${i}]`, 'must be a base64url string')
      chars += r.length
    })
    if (chars > MAX_UNIT_INPUT_CHARS) throw new ValidationError('input.records', 'are too large for one unit')
    return {
      module: readHash(rec, 'input'),
      records: records as string[],
      timeLimitMs: readInt(rec, 'input', 'timeLimitMs', TIME_LIMIT.min, TIME_LIMIT.max),
    }
  },

  resources: (input) => [input.module],

  timeLimit: (input) => ({
    ms: input.timeLimitMs,
    output: { error: `time limit: the unit ran longer than ${input.timeLimitMs} ms` },
  }),

  run(input, ctx) {
    const bytes = ctx.resource?.(input.module)
    if (bytes === undefined)
      throw new UnrecoverableError(`module ${input.module} was not given to the kernel`)
    return runModule(input.module, bytes, input.records.map(fromBase64Url), {
      maxOutputBytes: MAX_UNIT_OUTPUT_BYTES,
      onProgress: (record, permille) =>
        ctx.progress?.((record + Math.min(1000, Math.max(0, permille)) / 1000) / input.records.length),
      ...(ctx.signal === undefined ? {} : { signal: ctx.signal }),
    })
  },

  parseOutput(raw) {
    const rec = readRecord(raw, 'output', ['outputs', 'error'])
    if (rec['error'] !== undefined) {
      if (typeof rec['error'] !== 'string' || rec['error'].length > 500 || rec['outputs'] !== undefined)
        throw new ValidationError('output.error', 'must be a string of at most 500 characters, alone')
      return { error: rec['error'] }
    }
    const outs = rec['outputs']
    if (!Array.isArray(outs) || outs.length > MAX_RECORDS_PER_UNIT)
      throw new ValidationError(
        'output.outputs',
        `must be a list of at most ${MAX_RECORDS_PER_UNIT} byte strings`,
      )
    let total = 0
    outs.forEach((o: unknown, i) => {
      if (!(o instanceof Uint8Array)) throw new ValidationError(`output.outputs[${i}]`, 'must be bytes')
      total += o.length
    })
    if (total > MAX_UNIT_OUTPUT_BYTES)
      throw new ValidationError('output.outputs', `exceed ${MAX_UNIT_OUTPUT_BYTES} bytes`)
    return { outputs: outs as Uint8Array[] }
  },

  merge(params, outputs) {
    // A blob's unit count is not in the params; the coordinator passes one output per planned unit.
    const expected = 'blob' in params.input ? outputs.length : unitCount(params)
    if (outputs.length !== expected)
      throw new ValidationError('outputs', `expected ${expected} unit outputs, got ${outputs.length}`)
    const all: Uint8Array[] = []
    outputs.forEach((o, i) => {
      if ('error' in o) throw new UnrecoverableError(`unit ${i} failed: ${o.error}`)
      all.push(...o.outputs)
    })
    const records = all.length
    if (params.merge === 'sum-u64') return { records, sum: sumU64(all) }
    if (params.merge === 'concat') {
      const out = new Uint8Array(all.reduce((n, o) => n + o.length, 0))
      let at = 0
      for (const o of all) {
        out.set(o, at)
        at += o.length
      }
      return { records, output: toBase64(out) }
    }
    return { records, outputs: all.map(toBase64) }
  },
}
