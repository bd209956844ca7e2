// Compiling WebAssembly jobs here, without the network: WAT with wabt, AssemblyScript with asc (both
// npm devDependencies). Used by the examples' build, the tests and bench/wasm.ts. As a command:
//   node dist/scripts/wasm-build.js <source.wat|source.ts> <out.wasm>
import asc from 'assemblyscript/asc'
import { readFile, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import wabtInit from 'wabt'

/** The repository root (this file runs from dist/scripts/). */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const TRANSFORM = fileURLToPath(new URL('../../scripts/asc-cohort-transform.mjs', import.meta.url))

/** WebAssembly features wabt may accept (the module rules then decide what Cohort runs). */
export type WatFeatures = Partial<Record<'threads' | 'simd' | 'relaxed_simd' | 'multi_memory', boolean>>

let wabt: Awaited<ReturnType<typeof wabtInit>> | undefined

export async function compileWat(source: string, features: WatFeatures = {}): Promise<Uint8Array> {
  wabt ??= await wabtInit()
  const mod = wabt.parseWat('module.wat', source, features)
  try {
    mod.resolveNames()
    // No wabt validate(): it ignores the features given to parseWat. V8 validates when compiling.
    return new Uint8Array(mod.toBinary({}).buffer)
  } finally {
    mod.destroy()
  }
}

export interface AscOptions {
  /** The memory maximum the module declares, in 64 KiB pages. Default 256 (16 MiB). */
  maxPages?: number
}

/**
 * Compile one AssemblyScript file with Cohort's settings: the stub runtime (a bump allocator, no GC),
 * the memory imported from "cohort" with a maximum, no memory export, and `abort` as a trap (so
 * the module imports nothing from "env").
 */
export async function compileAssemblyScript(file: string, opts: AscOptions = {}): Promise<Uint8Array> {
  const source = await readFile(file, 'utf8')
  const r = await asc.compileString(
    { 'index.ts': source },
    {
      optimizeLevel: 3,
      shrinkLevel: 0,
      runtime: 'stub',
      importMemory: true,
      noExportMemory: true,
      initialMemory: 1,
      maximumMemory: opts.maxPages ?? 256,
      use: ['abort='],
      transform: [TRANSFORM],
    },
  )
  if (r.error !== null || r.binary === null) {
    // asc's output stream is a byte buffer whose toString() gives the text.
    // eslint-disable-next-line @typescript-eslint/no-base-to-string
    throw new Error(`asc failed on ${file}: ${r.error?.message ?? ''}\n${r.stderr.toString()}`)
  }
  return r.binary
}

/** Compile a .wat or AssemblyScript .ts file, by its extension. */
export async function compileFile(file: string): Promise<Uint8Array> {
  if (file.endsWith('.wat')) return await compileWat(await readFile(file, 'utf8'))
  return await compileAssemblyScript(file)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [src, out] = process.argv.slice(2)
  if (src === undefined || out === undefined) {
    console.error('usage: node dist/scripts/wasm-build.js <source.wat|source.ts> <out.wasm>')
    process.exit(2)
  }
  const bytes = await compileFile(src)
  await writeFile(out, bytes)
  console.log(`${out}: ${bytes.length} bytes`)
}
