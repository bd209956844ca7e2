// End-to-end lines: whole jobs as a user submits them — the job type's default params, quorum 2 —
// on a cluster shaped like `cohort up --workers 2` (two vouched worker daemons sharing the cores),
// against the same units computed twice straight on a piscina pool with as many threads in all.
// POST until the coordinator says completed, vs. the pool's wall time; both sides alternate.
import { createPoolRunner, type Runner } from '../worker/index.js'
import { startBenchCluster, type BenchCluster, type Endpoints } from './cluster.js'
import { plannedUnits, runBaseline, type PlannedUnits } from './e2e-baseline.js'
import { progress } from './log.js'
import { medianRatio } from './stats.js'

export interface E2eLine {
  label: string
  type: string
  /** Only what a user must give: the job type fills in the rest (unitSize, depth). */
  params: Record<string, unknown>
}

export const E2E_LINES: readonly E2eLine[] = [
  { label: 'nqueens n=14', type: 'nqueens', params: { n: 14 } },
  { label: 'primes to=10^9', type: 'primes', params: { to: 1e9 } },
]

/** Every unit computed by two identities (spotCheckRate 1: none accepted alone), as the baseline does. */
const REDUNDANCY = { quorum: 2, spotCheckRate: 1 }

export interface E2eOptions {
  endpoints: Endpoints
  /** Worker daemons and threads each (`cohort up`: 2 daemons, cores / 2 threads each). */
  workers: number
  threadsPerWorker: number
  /** Measured runs per side after one warm-up each; the median is reported. */
  repeats: number
}

export interface E2eRow {
  label: string
  kind: string
  /** The effective params the coordinator stored. */
  params: unknown
  /** Units the coordinator planned. */
  units: number
  quorum: number
  workers: number
  threadsPerWorker: number
  baselineMs: number[]
  platformMs: number[]
  /** Units the daemons ran per platform run (at least quorum x units). */
  replicasRun: number[]
  baselineMedianMs: number
  platformMedianMs: number
  /** platform / baseline. */
  ratio: number
}

function checkAnswer(line: E2eLine, platform: unknown, baseline: unknown): void {
  if (JSON.stringify(platform) !== JSON.stringify(baseline))
    throw new Error(
      `${line.label}: the platform answered ${JSON.stringify(platform)}, the baseline ${JSON.stringify(baseline)}`,
    )
}

async function platformRun(cluster: BenchCluster, line: E2eLine) {
  await cluster.workers.arm()
  const run = await cluster.runJob(
    { type: line.type, params: line.params, redundancy: REDUNDANCY },
    { timeoutMs: 600_000 },
  )
  const host = await cluster.workers.report()
  return { ms: run.completedAt - run.postedAt, record: run.record, replicasRun: host.runs }
}

async function measureLine(
  cluster: BenchCluster,
  runner: Runner,
  line: E2eLine,
  opts: E2eOptions,
): Promise<E2eRow> {
  // Warm-up of both sides; the platform's run also says how the coordinator planned the job.
  const first = await platformRun(cluster, line)
  const units: PlannedUnits = plannedUnits(first.record)
  const expected = (await runBaseline(runner, units)).result
  checkAnswer(line, first.record.result, expected)
  const baselineMs: number[] = []
  const platformMs: number[] = []
  const replicasRun: number[] = []
  for (let r = 0; r < opts.repeats; r++) {
    const baseline = await runBaseline(runner, units)
    checkAnswer(line, expected, baseline.result)
    baselineMs.push(baseline.ms)
    const p = await platformRun(cluster, line)
    checkAnswer(line, p.record.result, expected)
    if (p.record.unitsTotal !== units.inputs.length)
      throw new Error(
        `${line.label}: planned into ${p.record.unitsTotal} units, before ${units.inputs.length}`,
      )
    platformMs.push(p.ms)
    replicasRun.push(p.replicasRun)
  }
  return {
    label: line.label,
    kind: units.kind,
    params: units.params,
    units: units.inputs.length,
    quorum: REDUNDANCY.quorum,
    workers: opts.workers,
    threadsPerWorker: opts.threadsPerWorker,
    baselineMs,
    platformMs,
    replicasRun,
    ...medianRatio(baselineMs, platformMs),
  }
}

export async function runE2e(opts: E2eOptions): Promise<E2eRow[]> {
  const runner = createPoolRunner({ threads: opts.workers * opts.threadsPerWorker })
  let cluster: BenchCluster | undefined
  try {
    cluster = await startBenchCluster({
      endpoints: opts.endpoints,
      workers: Array.from({ length: opts.workers }, () => ({ threads: opts.threadsPerWorker })),
      label: 'e2e',
    })
    const rows: E2eRow[] = []
    for (const line of E2E_LINES) {
      const row = await measureLine(cluster, runner, line, opts)
      progress(
        `e2e ${line.label}: ${row.units} units, baseline ${row.baselineMedianMs.toFixed(0)} ms, ` +
          `platform ${row.platformMedianMs.toFixed(0)} ms, ratio ${row.ratio.toFixed(2)}`,
      )
      rows.push(row)
    }
    return rows
  } finally {
    await cluster?.stop()
    await runner.close()
  }
}
