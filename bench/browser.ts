// Browser versus daemon: the same primes units on the worker daemon's piscina pool and on the
// contribute page's Web Workers in headless Chromium, with the same number of threads, each on a
// fresh pool per run (so both start with cold JIT). The ratio is Chromium's wall time over Node's
// (1.00 = as fast). Also measures the browser bundles (minified, and gzipped as served over a
// compressing proxy). Runs alone, or as the `browser` section of run.ts:
//   node dist/bench/browser.js [--threads N] [--quick]
import Koa from 'koa'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { readdir, readFile } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { gzipSync } from 'node:zlib'
import { contributeMiddleware } from '../coordinator/index.js'
import { generateIdentity } from '../shared/index.js'
import { launchChromium } from '../scripts/chromium.js'
import { createPoolRunner, type RunTask } from '../worker/index.js'
import { median } from './stats.js'

export interface BrowserBenchOptions {
  /** Threads in the piscina pool and Web Workers in the page. */
  threads: number
  /** Units per run (the same inputs on both sides). */
  units: number
  /** Numbers per primes unit. */
  unitSize: number
  /** Runs per side; the medians are compared. */
  repeats: number
}

export interface BundleSize {
  file: string
  bytes: number
  gzipBytes: number
}

export interface BrowserBenchResult extends BrowserBenchOptions {
  chromium: string
  nodeMs: number[]
  browserMs: number[]
  /** median(browserMs) / median(nodeMs). */
  ratio: number
  /** Every unit gave the same digest in both runtimes. */
  identical: boolean
  bundles: BundleSize[]
}

const WEB_DIR = fileURLToPath(new URL('../web/', import.meta.url))
/** Units start at 10^9, where the sieve does representative work per number. */
const FIRST = 1_000_000_000

function tasksFor(o: BrowserBenchOptions): RunTask[] {
  return Array.from({ length: o.units }, (_, i) => ({
    kind: 'primes@1',
    input: { from: FIRST + i * o.unitSize, to: FIRST + (i + 1) * o.unitSize },
  }))
}

/** One run on a fresh piscina pool, warmed with one tiny unit per thread like the page's runLocal. */
async function runInNode(tasks: RunTask[], threads: number): Promise<{ ms: number; digests: string[] }> {
  const runner = createPoolRunner({ threads })
  const run = (t: RunTask) => runner.run(t, new AbortController().signal)
  try {
    const warm = { kind: 'primes@1', input: { from: 0, to: 1000 } }
    await Promise.all(Array.from({ length: threads }, () => run(warm)))
    const started = performance.now()
    const outcomes = await Promise.all(tasks.map(run))
    return { ms: performance.now() - started, digests: outcomes.map((o) => o.digest) }
  } finally {
    await runner.close()
  }
}

async function bundleSizes(): Promise<BundleSize[]> {
  const files = (await readdir(WEB_DIR)).filter((f) => f.endsWith('.js')).sort()
  return Promise.all(
    files.map(async (file) => {
      const bytes = await readFile(`${WEB_DIR}${file}`)
      return {
        file: `dist/web/${file}`,
        bytes: bytes.length,
        gzipBytes: gzipSync(bytes, { level: 9 }).length,
      }
    }),
  )
}

/** Serves only the contribute page (no Redis, NATS or coordinator: the page runs units offline). */
async function servePage(): Promise<{ url: string; close(): Promise<void> }> {
  const app = new Koa()
  app.use(
    contributeMiddleware({
      natsWsUrl: 'ws://127.0.0.1:9',
      subjectPrefix: 'cohort',
      trust: [(await generateIdentity(false)).id],
    }),
  )
  const server: Server = app.listen(0, '127.0.0.1')
  await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

export async function runBrowserBench(o: BrowserBenchOptions): Promise<BrowserBenchResult> {
  const tasks = tasksFor(o)
  const site = await servePage()
  const browser = await launchChromium()
  try {
    const page = await browser.newPage()
    await page.goto(`${site.url}/contribute`)
    await page.waitForFunction(() => window.cohort !== undefined, null, { timeout: 15_000 })
    const nodeMs: number[] = []
    const browserMs: number[] = []
    let identical = true
    for (let r = 0; r < o.repeats; r++) {
      const n = await runInNode(tasks, o.threads)
      const b = await page.evaluate(([ts, threads]) => window.cohort!.runLocal(ts, threads), [
        tasks,
        o.threads,
      ] as const)
      nodeMs.push(n.ms)
      browserMs.push(b.ms)
      identical &&= b.outcomes.every((x, i) => x.digest === n.digests[i])
    }
    return {
      ...o,
      chromium: browser.version(),
      nodeMs,
      browserMs,
      ratio: median(browserMs) / median(nodeMs),
      identical,
      bundles: await bundleSizes(),
    }
  } finally {
    await browser.close()
    await site.close()
  }
}

/** Options for a full run or a quick one. */
export function browserBenchOptions(threads: number, quick: boolean): BrowserBenchOptions {
  return { threads, units: (quick ? 4 : 12) * threads, unitSize: 50_000_000, repeats: quick ? 1 : 3 }
}

export function browserTables(r: BrowserBenchResult): string {
  const kb = (n: number): string => `${(n / 1024).toFixed(1)} KiB`
  const med = (xs: number[]): string => median(xs).toFixed(0)
  return [
    `| threads | units × numbers | Node piscina ms (a) | Chromium ${r.chromium} Web Workers ms (b) | b/a | same digests |`,
    '| --- | --- | --- | --- | --- | --- |',
    `| ${r.threads} | ${r.units} × ${r.unitSize.toExponential(0)} | ${med(r.nodeMs)} | ${med(r.browserMs)} | ` +
      `${r.ratio.toFixed(2)} | ${r.identical ? 'yes' : 'NO'} |`,
    '',
    '| bundle | minified | gzip -9 |',
    '| --- | --- | --- |',
    ...r.bundles.map(
      (b) => `| ${b.file} | ${kb(b.bytes)} (${b.bytes} B) | ${kb(b.gzipBytes)} (${b.gzipBytes} B) |`,
    ),
  ].join('\n')
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { threads: { type: 'string' }, quick: { type: 'boolean', default: false } },
    strict: true,
  })
  const threads = values.threads === undefined ? availableParallelism() : Number(values.threads)
  if (!Number.isSafeInteger(threads) || threads < 1 || threads > 64)
    throw new Error('--threads must be an integer from 1 to 64')
  const result = await runBrowserBench(browserBenchOptions(threads, values.quick))
  console.log(`## Browser vs. daemon: the same primes units\n\n${browserTables(result)}`)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err)
      process.exit(1)
    },
  )
}
