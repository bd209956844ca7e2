// WebAssembly vs the built-in JS kernel: the same prime-counting unit three ways — the AssemblyScript
// example module in a daemon's piscina thread, the same module in a Chromium Web Worker, and the
// built-in `primes@1` kernel in a piscina thread (the baseline, measured in the same run). Times are
// the kernels' own compute times (instantiation included for wasm), medians of several runs.
//   npm run build && node dist/bench/wasm.js
import Koa from 'koa'
import type { AddressInfo } from 'node:net'
import { contributeMiddleware } from '../coordinator/http/contribute.js'
import { wasm } from '../jobs/index.js'
import { launchChromium } from '../scripts/chromium.js'
import { compileAssemblyScript, ROOT } from '../scripts/wasm-build.js'
import { decode, generateIdentity, sha256Hex } from '../shared/index.js'
import { createPoolRunner, type RunTask } from '../worker/index.js'
import { parseParams } from '../coordinator/schema/index.js'

const REPEAT = 7
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN

const bytes = await compileAssemblyScript(`${ROOT}/examples/wasm-primes-assemblyscript/assembly/index.ts`)
const hash = await sha256Hex(bytes)
const ranges: [number, number][] = [
  [0, 10_000_000],
  [1_000_000_000, 1_010_000_000],
]

function wasmTask(from: number, to: number): RunTask {
  const params = parseParams(wasm, { module: hash, input: { range: { from, to } }, merge: 'sum-u64' })
  return { kind: 'wasm@1', input: wasm.split(params)[0], resources: { [hash]: bytes } }
}
const countOf = (output: Uint8Array): bigint => {
  const o = decode(output) as { outputs: Uint8Array[] }
  const b = o.outputs[0] as Uint8Array
  return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true)
}

// 1 and 3: piscina, one thread.
const runner = createPoolRunner({ threads: 1 })
const signal = new AbortController().signal
const inPiscina: { wasm: number; js: number; count: bigint }[] = []
for (const [from, to] of ranges) {
  await runner.run(wasmTask(0, 1000), signal)
  const w: number[] = []
  const j: number[] = []
  let count = 0n
  for (let i = 0; i < REPEAT; i++) {
    const a = await runner.run(wasmTask(from, to), signal)
    count = countOf(a.output)
    w.push(a.computeMs)
    const b = await runner.run({ kind: 'primes@1', input: { from, to } }, signal)
    const js = decode(b.output) as { count: number }
    if (BigInt(js.count) !== count) throw new Error(`wasm counted ${count}, primes@1 ${js.count}`)
    j.push(b.computeMs)
  }
  inPiscina.push({ wasm: median(w), js: median(j), count })
}
await runner.close()

// 2: Chromium, through the contribute page's runLocal (one Web Worker).
const app = new Koa()
app.use(
  contributeMiddleware({
    natsWsUrl: 'ws://127.0.0.1:9',
    subjectPrefix: 'bench',
    trust: [(await generateIdentity(false)).id],
  }),
)
const server = app.listen(0, '127.0.0.1')
await new Promise((r) => server.once('listening', r))
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
const browser = await launchChromium()
const inChromium: number[] = []
try {
  const page = await browser.newPage()
  await page.goto(`${base}/contribute`)
  await page.waitForFunction(() => window.cohort !== undefined)
  for (const [from, to] of ranges) {
    const tasks = [wasmTask(0, 1000), ...Array.from({ length: REPEAT }, () => wasmTask(from, to))]
    const r = await page.evaluate((ts) => window.cohort!.runLocal(ts, 1), tasks)
    inChromium.push(median(r.outcomes.slice(1).map((o) => o.computeMs)))
  }
} finally {
  await browser.close()
  server.close()
}

console.log(`wasm module ${hash.slice(0, 12)}… (${bytes.length} bytes, AssemblyScript); median of ${REPEAT}`)
console.log(
  '| unit | primes | wasm in piscina | wasm in Chromium | primes@1 (JS) in piscina | Chromium / piscina | wasm / JS |',
)
console.log('|---|---|---|---|---|---|---|')
ranges.forEach(([from, to], i) => {
  const p = inPiscina[i]!
  const c = inChromium[i]!
  console.log(
    `| [${from.toExponential()}, ${to.toExponential()}) | ${p.count} | ${p.wasm} ms | ${c} ms | ${p.js} ms | ${(c / p.wasm).toFixed(2)} | ${(p.wasm / p.js).toFixed(2)} |`,
  )
})
