// Lease latency: how long a volunteer waits from sending a work request to holding a unit it has
// verified (the coordinator's signature checked, as the daemon does before running anything).
// Measured with the worker's own client by a thread of probing identities (lease-probe.ts) against
// a job of many ready units: once with the coordinator otherwise idle, once while worker daemons
// compute a job on the same coordinator (their requests, results and validation compete).
import { Worker } from 'node:worker_threads'
import { primes } from '../jobs/index.js'
import { startBenchCluster, type BenchCluster, type Endpoints, type WorkerSpec } from './cluster.js'
import { progress } from './log.js'
import type { ProbeInit, ProbeReply, ProbeReport } from './lease-probe-protocol.js'
import { median, percentile, round } from './stats.js'
import { PRIMES_KIND } from './workload.js'

export interface LeaseLatencyOptions {
  endpoints: Endpoints
  /** Probing identities, and the work requests each sends per second. */
  identities: number
  perIdentityPerSecond: number
  /** Measured leases per phase. */
  samples: number
  /** The daemons computing during the busy phase. */
  workers: WorkerSpec[]
}

export interface LatencySummary {
  count: number
  p50Ms: number
  p99Ms: number
  maxMs: number
  /** Median of the `verifyUnit` part alone. */
  verifyP50Ms: number
  /** Requests answered without a unit, and requests that failed. */
  empty: ProbeReport['empty']
  failed: number
  firstError?: string
  /** Leases per second over the measured part (all identities). */
  leasesPerSecond: number
}

export interface LeaseLatencyPhase {
  /** `idle`: only the probes; `busy`: worker daemons compute a job meanwhile. */
  phase: 'idle' | 'busy'
  /** Units the daemons ran during the measurement (0 when idle). */
  unitsRunMeanwhile: number
  latency: LatencySummary
}

export interface LeaseLatencyResult {
  identities: number
  perIdentityPerSecond: number
  jobUnits: number
  workers: WorkerSpec[]
  phases: LeaseLatencyPhase[]
}

/**
 * The job leased from: 10,000 primes units of 10^7 numbers up to 10^11 at quorum 2, every unit
 * replicated (spotCheckRate 1). Enough ready replicas that neither the probes (which hand theirs back)
 * nor the daemons run out during a phase.
 */
const JOB = {
  type: primes.name,
  version: primes.version,
  params: { from: 0, to: 1e11, unitSize: 1e7 },
  redundancy: { quorum: 2, maxReplicas: 4, spotCheckRate: 1 },
}
const JOB_UNITS = 10_000

function summarize(r: ProbeReport): LatencySummary {
  if (r.totalMs.length === 0) throw new Error(`no lease measured: ${r.firstError ?? 'no unit was granted'}`)
  return {
    count: r.totalMs.length,
    p50Ms: round(percentile(r.totalMs, 50), 2),
    p99Ms: round(percentile(r.totalMs, 99), 2),
    maxMs: round(Math.max(...r.totalMs), 2),
    verifyP50Ms: round(median(r.verifyMs), 3),
    empty: r.empty,
    failed: r.failed,
    ...(r.firstError === undefined ? {} : { firstError: r.firstError }),
    leasesPerSecond: round((r.totalMs.length / r.spanMs) * 1000, 1),
  }
}

/** Run the probe thread to its report. */
function probe(init: ProbeInit): Promise<ProbeReport> {
  const thread = new Worker(new URL('./lease-probe.js', import.meta.url), { workerData: init })
  return new Promise<ProbeReport>((resolve, reject) => {
    // The thread reports by its own deadline; this one only catches a thread that hangs.
    const timer = setTimeout(() => {
      reject(new Error('the lease probe thread did not report in time'))
      void thread.terminate()
    }, init.timeoutMs + 30_000)
    thread.once('message', (reply: ProbeReply) => {
      clearTimeout(timer)
      void thread.terminate()
      if (reply.type === 'failed') reject(new Error(`lease probes failed: ${reply.message}`))
      else resolve(reply)
    })
    thread.once('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
  })
}

async function measurePhase(
  opts: LeaseLatencyOptions,
  phase: LeaseLatencyPhase['phase'],
): Promise<LeaseLatencyPhase> {
  let cluster: BenchCluster | undefined
  try {
    cluster = await startBenchCluster({
      endpoints: opts.endpoints,
      workers: phase === 'busy' ? opts.workers : [],
      label: `latency-${phase}`,
    })
    const { id } = await cluster.api.submit(JOB)
    const job = await cluster.api.job(id)
    if (job.units.total !== JOB_UNITS)
      throw new Error(`the latency job has ${job.units.total} units, expected ${JOB_UNITS}`)
    await cluster.workers.arm()
    const { coordinator } = cluster
    const report = await probe({
      natsUrl: opts.endpoints.natsUrl,
      ...(opts.endpoints.natsAccountSeed === undefined ? {} : { coordinatorUrl: coordinator.url }),
      subjectPrefix: cluster.subjectPrefix,
      trusted: cluster.trusted,
      identities: opts.identities,
      perIdentityPerSecond: opts.perIdentityPerSecond,
      samples: opts.samples,
      accepts: [PRIMES_KIND],
      // Twice the time the samples take at the set pace, plus sign-up.
      timeoutMs: (2 * opts.samples * 1000) / (opts.identities * opts.perIdentityPerSecond) + 30_000,
    })
    const host = await cluster.workers.report()
    const latency = summarize(report)
    if (phase === 'busy' && host.runs === 0) throw new Error('the daemons ran no unit during the busy phase')
    progress(
      `lease latency (${phase}): p50 ${latency.p50Ms} ms, p99 ${latency.p99Ms} ms, max ${latency.maxMs} ms ` +
        `over ${latency.count} leases; ${host.runs} units run by the daemons meanwhile`,
    )
    await cluster.api.cancel(id)
    return { phase, unitsRunMeanwhile: host.runs, latency }
  } finally {
    await cluster?.stop()
  }
}

export async function runLeaseLatency(opts: LeaseLatencyOptions): Promise<LeaseLatencyResult> {
  const phases = [await measurePhase(opts, 'idle'), await measurePhase(opts, 'busy')]
  return {
    identities: opts.identities,
    perIdentityPerSecond: opts.perIdentityPerSecond,
    jobUnits: JOB_UNITS,
    workers: opts.workers,
    phases,
  }
}
