// Throughput: how many units per second one coordinator validates at quorum 2 when units are as small
// as the job type allows, fed by two worker daemons that hold plenty of units. Compared with the same
// units run directly on a piscina pool with as many threads as the daemons have together.
import { availableParallelism } from 'node:os'
import { performance } from 'node:perf_hooks'
import { createPoolRunner } from '../worker/index.js'
import { startBenchCluster, type BenchCluster, type Endpoints } from './cluster.js'
import { runDirect } from './direct.js'
import { progress } from './log.js'
import { processCpuMs } from './machine.js'
import { median, now } from './stats.js'
import { jobRequest, primeCount, primesWorkload, resultCount, type Workload } from './workload.js'

export interface ThroughputOptions {
  endpoints: Endpoints
  units: number
  workers: number
  threadsPerWorker: number
  /** Units each daemon buffers; undefined: the daemon's default (sized in time). */
  bufferUnits: number | undefined
  /** Measured runs per side; the median is reported. */
  repeats: number
  /** Unmeasured platform runs first: throughput keeps rising over the first few jobs (JIT). Default 2. */
  warmups?: number
  /** Pids of the private Redis and NATS, to count their CPU time too. */
  servicePids?: () => number[]
}

export interface ThroughputRun {
  /** POST until the first unit started on a worker (planning, first lease). */
  postToFirstStartMs: number
  /** First unit started until the last unit was validated. */
  firstStartToValidatedMs: number
  /** First unit started until the job was completed (includes assimilating the result). */
  firstStartToCompletedMs: number
  unitsValidated: number
  resultsAccepted: number
  unitsPerSecond: number
  resultsPerSecond: number
  /** Event-loop utilization of the coordinator's thread during the run. */
  coordinatorEventLoopUtilization: number
  /**
   * Busy time of the coordinator's event loop per accepted result (planning, leasing, validating and
   * assimilating together): 1000 / this is what one coordinator could accept per second with a core to itself.
   */
  coordinatorMsPerResult: number
  /** Event-loop utilization of the thread hosting both worker daemons. */
  workersEventLoopUtilization: number
  /** Median wait of a runner thread between two units (see HostReport). */
  medianGapMs: number | null
  /** CPU time of this process (all threads) during the run. */
  cpuMs: number
  /** CPU time of the private Redis and NATS during the run (0 when they are external). */
  servicesCpuMs: number
  /** (cpuMs + servicesCpuMs) / (cores x run time): how much of the machine the run used. */
  machineBusy: number
}

export interface ThroughputResult {
  units: number
  unitSize: number
  quorum: number
  workers: number
  threadsPerWorker: number
  /** Units each daemon buffers; undefined: the daemon's default (sized in time). */
  bufferUnits: number | undefined
  runs: ThroughputRun[]
  unitsPerSecond: number
  resultsPerSecond: number
  baselineRunsMs: number[]
  baselineUnitsPerSecond: number
  /** Validated units per second / baseline units per second. */
  ratio: number
}

const QUORUM = 2
const UNIT_SIZE = 1000

function servicesCpuMs(pids: number[]): number {
  let ms = 0
  for (const pid of pids) ms += processCpuMs(pid) ?? 0
  return ms
}

async function platformRun(
  cluster: BenchCluster,
  w: Workload,
  expected: number,
  pids: number[],
): Promise<ThroughputRun> {
  const { counters } = cluster.coordinator
  const units = w.inputs.length
  const validated0 = counters.unitsValidated
  const accepted0 = counters.resultsAccepted
  let validatedAt: number | undefined
  await cluster.workers.arm()
  const elu0 = performance.eventLoopUtilization()
  const cpu0 = process.cpuUsage()
  const services0 = servicesCpuMs(pids)
  const run = await cluster.runJob(jobRequest(w, QUORUM, QUORUM), {
    onPoll: () => {
      if (validatedAt === undefined && counters.unitsValidated - validated0 >= units) validatedAt = now()
    },
  })
  const cpu = process.cpuUsage(cpu0)
  const services = servicesCpuMs(pids) - services0
  const elu = performance.eventLoopUtilization(elu0)
  const host = await cluster.workers.report()
  const count = resultCount(run.record.result)
  if (count !== expected) throw new Error(`platform counted ${count} primes, the baseline ${expected}`)
  const firstStart = host.firstStartedAt
  if (firstStart === null) throw new Error('no unit ever started')
  const span = run.completedAt - firstStart
  const resultsAccepted = counters.resultsAccepted - accepted0
  return {
    postToFirstStartMs: firstStart - run.postedAt,
    firstStartToValidatedMs: (validatedAt ?? run.completedAt) - firstStart,
    firstStartToCompletedMs: span,
    unitsValidated: counters.unitsValidated - validated0,
    resultsAccepted,
    unitsPerSecond: (units / span) * 1000,
    resultsPerSecond: (resultsAccepted / span) * 1000,
    coordinatorEventLoopUtilization: elu.utilization,
    coordinatorMsPerResult: elu.active / resultsAccepted,
    workersEventLoopUtilization: host.eventLoopUtilization,
    medianGapMs: host.medianGapMs,
    cpuMs: (cpu.user + cpu.system) / 1000,
    servicesCpuMs: services,
    machineBusy:
      ((cpu.user + cpu.system) / 1000 + services) /
      (availableParallelism() * (run.completedAt - run.postedAt)),
  }
}

export async function runThroughput(opts: ThroughputOptions): Promise<ThroughputResult> {
  const w = primesWorkload(0, UNIT_SIZE, opts.units)
  const threads = opts.workers * opts.threadsPerWorker

  // Baseline first, alone on the machine; its pool is closed before the platform starts.
  const runner = createPoolRunner({ threads })
  const baselineRunsMs: number[] = []
  let expected: number
  try {
    expected = primeCount((await runDirect(runner, w.inputs)).outcomes)
    for (let r = 0; r < opts.repeats; r++) baselineRunsMs.push((await runDirect(runner, w.inputs)).ms)
  } finally {
    await runner.close()
  }
  const baselineUnitsPerSecond = (opts.units / median(baselineRunsMs)) * 1000
  progress(`throughput baseline: ${baselineUnitsPerSecond.toFixed(0)} units/s on ${threads} threads`)

  let cluster: BenchCluster | undefined
  try {
    cluster = await startBenchCluster({
      endpoints: opts.endpoints,
      workers: Array.from({ length: opts.workers }, () => ({
        threads: opts.threadsPerWorker,
        ...(opts.bufferUnits === undefined ? {} : { bufferUnits: opts.bufferUnits }),
      })),
      label: 'throughput',
    })
    const pids = opts.servicePids?.() ?? []
    for (let i = 0; i < (opts.warmups ?? 2); i++) await platformRun(cluster, w, expected, pids)
    const runs: ThroughputRun[] = []
    for (let r = 0; r < opts.repeats; r++) {
      const run = await platformRun(cluster, w, expected, pids)
      progress(
        `throughput run ${r + 1}: ${run.unitsPerSecond.toFixed(0)} units/s validated, ` +
          `${run.resultsPerSecond.toFixed(0)} results/s, coordinator loop ${(run.coordinatorEventLoopUtilization * 100).toFixed(0)}% busy, ` +
          `workers loop ${(run.workersEventLoopUtilization * 100).toFixed(0)}% busy, ` +
          `machine ${(run.machineBusy * 100).toFixed(0)}% busy`,
      )
      runs.push(run)
    }
    const unitsPerSecond = median(runs.map((r) => r.unitsPerSecond))
    return {
      units: opts.units,
      unitSize: UNIT_SIZE,
      quorum: QUORUM,
      workers: opts.workers,
      threadsPerWorker: opts.threadsPerWorker,
      bufferUnits: opts.bufferUnits,
      runs,
      unitsPerSecond,
      resultsPerSecond: median(runs.map((r) => r.resultsPerSecond)),
      baselineRunsMs,
      baselineUnitsPerSecond,
      ratio: unitsPerSecond / baselineUnitsPerSecond,
    }
  } finally {
    await cluster?.stop()
  }
}
