// Overhead: the same units run (a) directly on a piscina pool and (b) through the whole platform at
// quorum 1 (HTTP submit -> plan -> lease -> verify -> run -> sign -> validate -> assimilate), with one
// worker daemon of the same thread count. Reports wall-time medians and their ratio b/a per unit size,
// and the latency of a job of one tiny unit (the fixed cost every job pays).
import { performance } from 'node:perf_hooks'
import { createPoolRunner } from '../worker/index.js'
import { calibrateUnitSize } from './calibrate.js'
import { startBenchCluster, type BenchCluster, type Endpoints } from './cluster.js'
import { runDirect } from './direct.js'
import { progress } from './log.js'
import { median, medianRatio } from './stats.js'
import { jobRequest, primeCount, primesWorkload, resultCount, type Workload } from './workload.js'

export interface UnitClass {
  /** Target compute time of one unit, in ms. */
  targetMs: number
  /** Units per measurement. */
  units: number
}

export interface OverheadOptions {
  endpoints: Endpoints
  threads: number
  classes: readonly UnitClass[]
  /** Measured runs per side, after one warm-up run each; the median is reported. */
  repeats: number
}

export interface OverheadRow {
  targetMs: number
  unitSize: number
  /** One unit timed directly on the main thread during calibration. */
  calibratedMs: number
  units: number
  threads: number
  baselineMs: number[]
  platformMs: number[]
  baselineMedianMs: number
  platformMedianMs: number
  /** Baseline thread time per unit (median wall x threads / units): above calibratedMs when threads share cores. */
  poolMsPerUnit: number
  /** platform / baseline wall time. */
  ratio: number
  /** Extra wall time per unit: (platform - baseline) / units. */
  extraMsPerUnit: number
  /** Medians over the platform runs of what the threads did (see PlatformRun). */
  coordinatorEventLoopUtilization: number
  workerEventLoopUtilization: number
  runnerBusy: number
  medianGapMs: number | null
}

/** A job of one 1000-number unit at quorum 1: medians over the repeats. */
export interface JobLatency {
  postToFirstStartMs: number
  postToCompletedMs: number
  runs: { postToFirstStartMs: number; postToCompletedMs: number }[]
}

export interface OverheadResult {
  rows: OverheadRow[]
  latency: JobLatency
}

/** One platform measurement, with what the threads were doing meanwhile. */
interface PlatformRun {
  ms: number
  /** POST until the first unit started on the worker. */
  firstStartMs: number
  coordinatorEventLoopUtilization: number
  workerEventLoopUtilization: number
  /** Share of the worker's runner threads' time spent running units (piscina round trip included). */
  runnerBusy: number
  medianGapMs: number | null
}

/** Units start here: the sieve costs about the same per number across the ranges used. */
const RANGE_FROM = 1e9

async function platformRun(
  cluster: BenchCluster,
  w: Workload,
  expected: number,
  threads: number,
): Promise<PlatformRun> {
  await cluster.workers.arm()
  const elu0 = performance.eventLoopUtilization()
  const run = await cluster.runJob(jobRequest(w, 1, 1))
  const elu = performance.eventLoopUtilization(elu0)
  const host = await cluster.workers.report()
  const count = resultCount(run.record.result)
  if (count !== expected) throw new Error(`platform counted ${count} primes, the baseline ${expected}`)
  if (host.firstStartedAt === null) throw new Error('no unit ever started')
  const ms = run.completedAt - run.postedAt
  return {
    ms,
    firstStartMs: host.firstStartedAt - run.postedAt,
    coordinatorEventLoopUtilization: elu.utilization,
    workerEventLoopUtilization: host.eventLoopUtilization,
    runnerBusy: host.runMs / (threads * ms),
    medianGapMs: host.medianGapMs,
  }
}

async function measureClass(
  cluster: BenchCluster,
  runner: ReturnType<typeof createPoolRunner>,
  opts: OverheadOptions,
  c: UnitClass,
  cal: { unitSize: number; measuredMs: number },
): Promise<OverheadRow> {
  const w = primesWorkload(RANGE_FROM, cal.unitSize, c.units)
  // Warm-up: threads started, code compiled, sieve tables built, connections open.
  const expected = primeCount((await runDirect(runner, w.inputs)).outcomes)
  await platformRun(cluster, w, expected, opts.threads)
  const baselineMs: number[] = []
  const platform: PlatformRun[] = []
  // Alternate the two sides so drift on the machine hits both alike.
  for (let r = 0; r < opts.repeats; r++) {
    const direct = await runDirect(runner, w.inputs)
    if (primeCount(direct.outcomes) !== expected) throw new Error('the baseline is not deterministic')
    baselineMs.push(direct.ms)
    platform.push(await platformRun(cluster, w, expected, opts.threads))
  }
  const platformMs = platform.map((p) => p.ms)
  const gaps = platform.flatMap((p) => (p.medianGapMs === null ? [] : [p.medianGapMs]))
  const medians = medianRatio(baselineMs, platformMs)
  const { baselineMedianMs, platformMedianMs } = medians
  return {
    ...medians,
    targetMs: c.targetMs,
    unitSize: cal.unitSize,
    calibratedMs: cal.measuredMs,
    units: c.units,
    threads: opts.threads,
    baselineMs,
    platformMs,
    poolMsPerUnit: (baselineMedianMs * opts.threads) / c.units,
    extraMsPerUnit: (platformMedianMs - baselineMedianMs) / c.units,
    coordinatorEventLoopUtilization: median(platform.map((p) => p.coordinatorEventLoopUtilization)),
    workerEventLoopUtilization: median(platform.map((p) => p.workerEventLoopUtilization)),
    runnerBusy: median(platform.map((p) => p.runnerBusy)),
    medianGapMs: gaps.length === 0 ? null : median(gaps),
  }
}

async function measureLatency(
  cluster: BenchCluster,
  runner: ReturnType<typeof createPoolRunner>,
  opts: OverheadOptions,
): Promise<JobLatency> {
  const w = primesWorkload(RANGE_FROM, 1000, 1)
  const expected = primeCount((await runDirect(runner, w.inputs)).outcomes)
  await platformRun(cluster, w, expected, opts.threads)
  const runs: JobLatency['runs'] = []
  for (let r = 0; r < Math.max(3, opts.repeats); r++) {
    const p = await platformRun(cluster, w, expected, opts.threads)
    runs.push({ postToFirstStartMs: p.firstStartMs, postToCompletedMs: p.ms })
  }
  return {
    postToFirstStartMs: median(runs.map((r) => r.postToFirstStartMs)),
    postToCompletedMs: median(runs.map((r) => r.postToCompletedMs)),
    runs,
  }
}

export async function runOverhead(opts: OverheadOptions): Promise<OverheadResult> {
  // Calibrate first, while nothing else runs.
  const calibrations = opts.classes.map((c) => {
    const cal = calibrateUnitSize(c.targetMs, RANGE_FROM)
    progress(`calibrated ${c.targetMs} ms units: unitSize ${cal.unitSize} (${cal.measuredMs.toFixed(2)} ms)`)
    return cal
  })

  const runner = createPoolRunner({ threads: opts.threads })
  let cluster: BenchCluster | undefined
  try {
    cluster = await startBenchCluster({
      endpoints: opts.endpoints,
      workers: [{ threads: opts.threads }],
      label: 'overhead',
    })
    const latency = await measureLatency(cluster, runner, opts)
    progress(
      `job of one tiny unit: first start after ${latency.postToFirstStartMs.toFixed(0)} ms, ` +
        `completed after ${latency.postToCompletedMs.toFixed(0)} ms`,
    )
    const rows: OverheadRow[] = []
    for (const [i, c] of opts.classes.entries()) {
      const row = await measureClass(cluster, runner, opts, c, calibrations[i]!)
      progress(
        `overhead ${c.targetMs} ms x ${c.units}: baseline ${row.baselineMedianMs.toFixed(0)} ms, ` +
          `platform ${row.platformMedianMs.toFixed(0)} ms, ratio ${row.ratio.toFixed(2)}`,
      )
      rows.push(row)
    }
    return { rows, latency }
  } finally {
    await cluster?.stop()
    await runner.close()
  }
}
