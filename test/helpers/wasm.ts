// Test helper: the example modules compiled here (wabt, asc), misbehaving fixtures in WAT, and
// uploading modules to a coordinator.
import { join } from 'node:path'
import { compileAssemblyScript, compileWat, ROOT, type WatFeatures } from '../../scripts/wasm-build.js'
import { readFile } from 'node:fs/promises'

export const PRIMES_AS = join(ROOT, 'examples/wasm-primes-assemblyscript/assembly/index.ts')
export const FNV_WAT = join(ROOT, 'examples/wasm-fnv-wat/fnv1a.wat')

export const primesModule = (): Promise<Uint8Array> => compileAssemblyScript(PRIMES_AS)
export const fnvModule = async (): Promise<Uint8Array> => compileWat(await readFile(FNV_WAT, 'utf8'))

/** A module with Cohort's imports and `alloc`, whose `run` body is `body` (WAT instructions). */
export function fixture(body: string, opts: { head?: string; memory?: string; features?: WatFeatures } = {}) {
  return compileWat(
    `(module
      ${opts.memory ?? '(import "cohort" "memory" (memory 1 256))'}
      ${opts.head ?? ''}
      (func (export "alloc") (param i32) (result i32) (i32.const 1024))
      (func (export "run") (param i32 i32) (result i64) ${body}))`,
    opts.features,
  )
}

export const FIXTURES = {
  /** Never returns: only the time limit stops it. */
  loop: () => fixture('(loop $forever (br $forever)) (i64.const 0)'),
  /** Grows its memory 16 pages at a time until memory.grow gives -1, then traps. */
  memoryBomb: () =>
    fixture('(loop $more (br_if $more (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) unreachable'),
  /** Traps at once. */
  trap: () => fixture('unreachable'),
  /** Wants the clock: an import Cohort does not give. */
  forbiddenImport: () =>
    fixture('(drop (call $now)) (i64.const 0)', { head: '(import "env" "now" (func $now (result f64)))' }),
}

/** POST /v1/modules; returns the status and the parsed body. */
export async function upload(baseUrl: string, bytes: Uint8Array, type = 'application/wasm') {
  const r = await fetch(`${baseUrl}/v1/modules`, {
    method: 'POST',
    headers: { 'content-type': type },
    body: bytes as Uint8Array<ArrayBuffer>,
  })
  return { status: r.status, body: (await r.json()) as Record<string, unknown> }
}

/** Upload a module that must be accepted; returns its hash. */
export async function uploadOk(baseUrl: string, bytes: Uint8Array): Promise<string> {
  const r = await upload(baseUrl, bytes)
  if (r.status !== 201 && r.status !== 200) throw new Error(`upload refused: ${JSON.stringify(r.body)}`)
  return r.body['hash'] as string
}

/** The 32-bit FNV-1a of `text`'s UTF-8, as the 4 little-endian bytes the WAT example returns, base64. */
export function fnv1aBase64(text: string): string {
  let h = 0x811c9dc5
  for (const b of new TextEncoder().encode(text)) h = Math.imul(h ^ b, 0x01000193) >>> 0
  return Buffer.from(new Uint32Array([h]).buffer).toString('base64')
}

/** Unsigned LEB128, as the WebAssembly binary format writes sizes. */
function leb128(n: number): number[] {
  const out: number[] = []
  do {
    let b = n & 0x7f
    n >>>= 7
    if (n !== 0) b |= 0x80
    out.push(b)
  } while (n !== 0)
  return out
}

/**
 * `module` with a custom section of `payload` bytes appended: legal WebAssembly that instantiation
 * ignores. The bytes differ with `seed`, so the chunks of a large module differ too.
 */
export function withCustomSection(module: Uint8Array, payload: number, seed = 1): Uint8Array {
  const name = new TextEncoder().encode('cohort.padding')
  const head = [0, ...leb128(name.length + payload + leb128(name.length).length), ...leb128(name.length)]
  const out = new Uint8Array(module.length + head.length + name.length + payload)
  out.set(module)
  out.set(head, module.length)
  out.set(name, module.length + head.length)
  let x = seed >>> 0 || 1
  for (let at = module.length + head.length + name.length; at < out.length; at++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[at] = x & 0xff
  }
  return out
}
