// A small reader of the WebAssembly binary format: the sections Cohort's module rules look at
// (types, imports, functions, memories, exports) and a decoder of every instruction in the code
// section, so rules can be checked on opcodes rather than on guesses. Runtime-neutral: it runs in
// the coordinator (at upload) and in workers (before a module is run).

/** A malformed binary, or an instruction this reader does not know. `rule` names the refusal. */
export class WasmBinaryError extends Error {
  override name = 'WasmBinaryError'
  constructor(
    readonly rule: 'malformed' | 'unsupported-instruction' | 'threads' | 'relaxed-simd',
    message: string,
  ) {
    super(message)
  }
}

export type ValType = 'i32' | 'i64' | 'f32' | 'f64' | 'v128' | 'ref'

export interface FuncType {
  params: ValType[]
  results: ValType[]
}

export interface Limits {
  min: number
  max: number | undefined
  shared: boolean
  memory64: boolean
}

export type Import =
  | { module: string; name: string; kind: 'func'; type: FuncType }
  | { module: string; name: string; kind: 'memory'; limits: Limits }
  | { module: string; name: string; kind: 'table' | 'global' | 'tag' }

export interface Export {
  name: string
  kind: 'func' | 'table' | 'memory' | 'global' | 'tag'
  index: number
}

export interface WasmSummary {
  imports: Import[]
  exports: Export[]
  /** Memories the module defines itself (not imported). */
  ownMemories: number
  /** The type of every function, imported ones first (the function index space). */
  functions: FuncType[]
  /** Instructions that compute on f32/f64 values (their NaN bit patterns are not portable). */
  floatInstructions: number
  instructions: number
}

class Reader {
  pos = 0
  constructor(
    readonly bytes: Uint8Array,
    readonly end = bytes.length,
  ) {}
  byte(): number {
    if (this.pos >= this.end) throw new WasmBinaryError('malformed', 'unexpected end of the module')
    return this.bytes[this.pos++] as number
  }
  u32(): number {
    let result = 0
    let shift = 0
    for (;;) {
      const b = this.byte()
      result += (b & 0x7f) * 2 ** shift
      if ((b & 0x80) === 0) break
      shift += 7
      if (shift > 28) throw new WasmBinaryError('malformed', 'LEB128 integer too long')
    }
    if (result > 0xffffffff) throw new WasmBinaryError('malformed', 'u32 out of range')
    return result
  }
  /** Skip a signed LEB128 of at most `bits` bits. */
  sleb(bits: number): void {
    for (let i = 0; i < Math.ceil(bits / 7); i++) if ((this.byte() & 0x80) === 0) return
    throw new WasmBinaryError('malformed', 'LEB128 integer too long')
  }
  skip(n: number): void {
    if (this.pos + n > this.end) throw new WasmBinaryError('malformed', 'unexpected end of the module')
    this.pos += n
  }
  name(): string {
    const len = this.u32()
    const start = this.pos
    this.skip(len)
    return new TextDecoder().decode(this.bytes.subarray(start, start + len))
  }
}

function valType(r: Reader): ValType {
  const b = r.byte()
  switch (b) {
    case 0x7f:
      return 'i32'
    case 0x7e:
      return 'i64'
    case 0x7d:
      return 'f32'
    case 0x7c:
      return 'f64'
    case 0x7b:
      return 'v128'
    case 0x70:
    case 0x6f:
      return 'ref'
    case 0x63:
    case 0x64:
      r.sleb(33)
      return 'ref'
    default:
      throw new WasmBinaryError('unsupported-instruction', `unsupported value type 0x${b.toString(16)}`)
  }
}

function limits(r: Reader): Limits {
  const flags = r.byte()
  if (flags > 7) throw new WasmBinaryError('malformed', `unknown limits flags 0x${flags.toString(16)}`)
  const min = r.u32()
  const max = (flags & 1) !== 0 ? r.u32() : undefined
  return { min, max, shared: (flags & 2) !== 0, memory64: (flags & 4) !== 0 }
}

function memarg(r: Reader): void {
  const align = r.u32()
  if ((align & 0x40) !== 0) r.u32() // multi-memory index
  r.u32()
}

function blockType(r: Reader): void {
  const b = r.bytes[r.pos]
  if (b === 0x40 || b === 0x7f || b === 0x7e || b === 0x7d || b === 0x7c || b === 0x7b) r.pos++
  else if (b === 0x70 || b === 0x6f || b === 0x63 || b === 0x64) valType(r)
  else r.sleb(33)
}

const isFloatOp = (op: number): boolean =>
  op === 0x2a ||
  op === 0x2b ||
  op === 0x38 ||
  op === 0x39 ||
  op === 0x43 ||
  op === 0x44 ||
  (op >= 0x5b && op <= 0x66) ||
  (op >= 0x8b && op <= 0xa6) ||
  (op >= 0xa8 && op <= 0xbf && op !== 0xac && op !== 0xad)

/** Decode one function body's instructions; counts them and refuses what the rules forbid. */
function scanCode(r: Reader, summary: WasmSummary): void {
  const groups = r.u32()
  for (let i = 0; i < groups; i++) {
    r.u32()
    valType(r)
  }
  while (r.pos < r.end) {
    const op = r.byte()
    summary.instructions++
    if (isFloatOp(op)) summary.floatInstructions++
    switch (op) {
      case 0x02:
      case 0x03:
      case 0x04:
        blockType(r)
        break
      case 0x0c:
      case 0x0d:
      case 0x10:
      case 0x12:
      case 0x20:
      case 0x21:
      case 0x22:
      case 0x23:
      case 0x24:
      case 0x25:
      case 0x26:
      case 0xd2:
        r.u32()
        break
      case 0x0e: {
        const n = r.u32()
        for (let k = 0; k <= n; k++) r.u32()
        break
      }
      case 0x11:
      case 0x13:
        r.u32()
        r.u32()
        break
      case 0x1c: {
        const n = r.u32()
        for (let k = 0; k < n; k++) valType(r)
        break
      }
      case 0x3f:
      case 0x40:
        r.u32()
        break
      case 0x41:
        r.sleb(32)
        break
      case 0x42:
        r.sleb(64)
        break
      case 0x43:
        r.skip(4)
        break
      case 0x44:
        r.skip(8)
        break
      case 0xd0:
        r.sleb(33)
        break
      case 0xfc:
        prefixedFC(r)
        break
      case 0xfd:
        prefixedFD(r, summary)
        break
      case 0xfe:
        throw new WasmBinaryError(
          'threads',
          'the module uses atomic instructions (threads), which are not deterministic',
        )
      default:
        if (op >= 0x28 && op <= 0x3e) memarg(r)
        else if (
          !(op === 0x00 || op === 0x01 || op === 0x05 || op === 0x0b || op === 0x0f) &&
          !(op === 0x1a || op === 0x1b || op === 0xd1 || op === 0xd3 || op === 0xd5) &&
          !(op >= 0x45 && op <= 0xc4)
        )
          throw new WasmBinaryError('unsupported-instruction', `unsupported instruction 0x${op.toString(16)}`)
    }
  }
}

function prefixedFC(r: Reader): void {
  const sub = r.u32()
  if (sub <= 7) return // saturating truncation
  switch (sub) {
    case 8: // memory.init
      r.u32()
      r.u32()
      return
    case 9: // data.drop
    case 11: // memory.fill
    case 13: // elem.drop
    case 15: // table.grow
    case 16: // table.size
    case 17: // table.fill
      r.u32()
      return
    case 10: // memory.copy
    case 12: // table.init
    case 14: // table.copy
      r.u32()
      r.u32()
      return
    default:
      throw new WasmBinaryError('unsupported-instruction', `unsupported instruction 0xfc ${sub}`)
  }
}

function prefixedFD(r: Reader, summary: WasmSummary): void {
  const sub = r.u32()
  if (sub >= 0x100)
    throw new WasmBinaryError(
      'relaxed-simd',
      `the module uses relaxed SIMD (0xfd ${sub}), whose results differ between machines`,
    )
  // Float lanes (f32x4, f64x2) and their conversions; a rough count is enough for a warning.
  if (sub >= 0xe0 || (sub >= 0x1f && sub <= 0x22) || (sub >= 0x41 && sub <= 0x4c)) summary.floatInstructions++
  if (sub <= 11 || sub === 92 || sub === 93) memarg(r)
  else if (sub === 12 || sub === 13) r.skip(16)
  else if (sub >= 21 && sub <= 34) r.skip(1)
  else if (sub >= 84 && sub <= 91) {
    memarg(r)
    r.skip(1)
  }
}

const EXPORT_KINDS = ['func', 'table', 'memory', 'global', 'tag'] as const

/** Read a module's sections and decode its code. Throws WasmBinaryError on anything it cannot read. */
export function readWasm(bytes: Uint8Array): WasmSummary {
  const r = new Reader(bytes)
  const b = bytes
  const magic = b[0] === 0 && b[1] === 0x61 && b[2] === 0x73 && b[3] === 0x6d && b[4] === 1 && b[5] === 0
  if (bytes.length < 8 || !magic || b[6] !== 0 || b[7] !== 0) {
    throw new WasmBinaryError('malformed', 'not a WebAssembly module (bad magic number or version)')
  }
  r.pos = 8
  const types: FuncType[] = []
  const summary: WasmSummary = {
    imports: [],
    exports: [],
    ownMemories: 0,
    functions: [],
    floatInstructions: 0,
    instructions: 0,
  }
  const typeOf = (i: number): FuncType => {
    const t = types[i]
    if (t === undefined) throw new WasmBinaryError('malformed', `type index ${i} out of range`)
    return t
  }
  while (r.pos < bytes.length) {
    const id = r.byte()
    const size = r.u32()
    const end = r.pos + size
    if (end > bytes.length) throw new WasmBinaryError('malformed', `section ${id} runs past the end`)
    const s = new Reader(bytes, end)
    s.pos = r.pos
    switch (id) {
      case 1: {
        const n = s.u32()
        for (let i = 0; i < n; i++) {
          const form = s.byte()
          if (form !== 0x60)
            throw new WasmBinaryError(
              'unsupported-instruction',
              `unsupported type form 0x${form.toString(16)}`,
            )
          const params = Array.from({ length: s.u32() }, () => valType(s))
          const results = Array.from({ length: s.u32() }, () => valType(s))
          types.push({ params, results })
        }
        break
      }
      case 2: {
        const n = s.u32()
        for (let i = 0; i < n; i++) {
          const module = s.name()
          const name = s.name()
          const kind = s.byte()
          if (kind === 0) {
            const type = typeOf(s.u32())
            summary.functions.push(type)
            summary.imports.push({ module, name, kind: 'func', type })
          } else if (kind === 1) {
            valType(s)
            limits(s)
            summary.imports.push({ module, name, kind: 'table' })
          } else if (kind === 2) {
            summary.imports.push({ module, name, kind: 'memory', limits: limits(s) })
          } else if (kind === 3) {
            valType(s)
            s.byte()
            summary.imports.push({ module, name, kind: 'global' })
          } else if (kind === 4) {
            s.byte()
            s.u32()
            summary.imports.push({ module, name, kind: 'tag' })
          } else throw new WasmBinaryError('malformed', `unknown import kind ${kind}`)
        }
        break
      }
      case 3: {
        const n = s.u32()
        for (let i = 0; i < n; i++) summary.functions.push(typeOf(s.u32()))
        break
      }
      case 5:
        summary.ownMemories += s.u32()
        break
      case 7: {
        const n = s.u32()
        for (let i = 0; i < n; i++) {
          const name = s.name()
          const kind = EXPORT_KINDS[s.byte()]
          if (kind === undefined) throw new WasmBinaryError('malformed', 'unknown export kind')
          summary.exports.push({ name, kind, index: s.u32() })
        }
        break
      }
      case 10: {
        const n = s.u32()
        for (let i = 0; i < n; i++) {
          const len = s.u32()
          const body = new Reader(bytes, s.pos + len)
          body.pos = s.pos
          scanCode(body, summary)
          s.pos += len
        }
        break
      }
      default:
        // Custom (0), table (4), global (6), start (8), element (9), data (11), data count (12), tag (13).
        if (id > 13) throw new WasmBinaryError('malformed', `unknown section id ${id}`)
    }
    r.pos = end
  }
  return summary
}
