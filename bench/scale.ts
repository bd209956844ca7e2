// Scale: what one coordinator pays per validated unit as the crowd of volunteers grows (10, 100,
// 1,000), what a second coordinator adds, and what the peer overlay's discovery costs each peer as
// the overlay grows. Each run is a fresh deployment on the private Redis and NATS: coordinators in
// processes of their own (their CPU time is theirs alone), simulated volunteers on a few threads
// (scale-volunteers.ts: the real daemon with a fixed delay for the computation), one job of tiny
// primes units at quorum 2. Measured from the job's POST until every unit is validated, with the
// whole crowd already asking for work.
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import { connect } from '../client/index.js'
import { exportIdentity, generateIdentity } from '../shared/index.js'
import type { Endpoints } from './cluster.js'
import { progress } from './log.js'
import {
  startCoordinatorProcess,
  startVolunteersThread,
  type CoordinatorProcess,
  type VolunteersThread,
} from './scale-hosts.js'
import { measureOverlayTraffic, type OverlayTraffic } from './scale-overlay.js'
import type { VolunteersReport } from './scale-protocol.js'
import { now, percentile, round, sleep } from './stats.js'
import { jobRequest, primesWorkload } from './workload.js'

export interface ScaleOptions {
  endpoints: Endpoints
  /** Crowd sizes, one run each against one coordinator. */
  volunteers: number[]
  /** Crowd size of the runs against one and against two coordinators. */
  compareAt: number
  /** Units of the job of each run (quorum 2). */
  units: number
  /** What a unit takes a simulated volunteer instead of its computation. */
  unitDelayMs: number
  /** Overlay sizes for the discovery traffic. */
  overlayPeers: number[]
  /** Span over which discovery traffic is measured at each size. */
  overlayMeasureMs: number
  /** Only the overlay's discovery traffic (no crowd runs). */
  overlayOnly?: boolean
}

export interface ScaleRun {
  volunteers: number
  coordinators: number
  units: number
  /** POST to the last unit validated. */
  seconds: number
  unitsPerSecond: number
  /** CPU time of the coordinator processes together, per validated unit. */
  coordinatorCpuMsPerUnit: number
  /** CPU time of the coordinator processes together ÷ the run's wall time (1 = one core all the time). */
  coordinatorCores: number
  /** Redis commands (INFO commandstats calls, those run by scripts included) per validated unit. */
  redisCallsPerUnit: number
  leaseP50Ms: number
  leaseP99Ms: number
  /** Work requests per second over the run, and the share answered without a unit. */
  workRequestsPerSecond: number
  emptyShare: number
  renewals: number
  resultsRejected: number
  /** Sign-up and connection of the crowd (not measured as part of the run). */
  connectSeconds: number
}

export interface ScaleResult {
  unitDelayMs: number
  runs: ScaleRun[]
  overlay: OverlayTraffic[]
}

/** Simulated volunteers per thread at most: I/O only, a few hundred share an event loop well. */
const PER_THREAD = 250
const QUORUM = 2
const UNIT_SIZE = 1000
/** The coordinators' counters are read this often while a run goes on (IPC, no Redis). */
const POLL_MS = 50
/**
 * Idle time before a job is posted: the crowd has asked, found nothing, and been told to wait longer
 * each time (a thousand volunteers are 3 doublings into a climb that ends at 100 s), as a crowd that
 * has waited a while for work has. A crowd started at the moment the job comes asks all at once.
 */
const SETTLE_MS = 30_000
/** Units of the job that warms the coordinators up before a measured run. */
const WARMUP_UNITS = 400

const unique = (label: string): string =>
  `bench-scale-${label}-${process.pid}-${randomBytes(4).toString('hex')}`

async function redisCalls(redis: Redis): Promise<number> {
  const info = await redis.info('commandstats')
  let calls = 0
  for (const m of info.matchAll(/^cmdstat_[^:]+:calls=(\d+)/gm)) calls += Number(m[1])
  return calls
}

interface Deployment {
  coordinators: CoordinatorProcess[]
  subjectPrefix: string
  trusted: { keyId: string; publicKey: Uint8Array }
  /** One more coordinator of the same deployment (same Redis keys, subjects and signing key). */
  addCoordinator(): Promise<void>
  stop(): Promise<void>
}

async function startDeployment(endpoints: Endpoints, label: string): Promise<Deployment> {
  const identity = await generateIdentity(true)
  const init = {
    endpoints,
    redisPrefix: `${unique(label)}:`,
    subjectPrefix: unique(label),
    identity: await exportIdentity(identity),
  }
  const coordinators: CoordinatorProcess[] = [await startCoordinatorProcess(init)]
  return {
    coordinators,
    subjectPrefix: init.subjectPrefix,
    trusted: { keyId: identity.keyId, publicKey: identity.publicKey },
    async addCoordinator() {
      coordinators.push(await startCoordinatorProcess(init))
    },
    async stop() {
      await Promise.all(coordinators.map((c) => c.stop()))
    },
  }
}

async function totals(cs: CoordinatorProcess[]): Promise<{ cpuMs: number; validated: number }> {
  const all = await Promise.all(cs.map((c) => c.stats()))
  return {
    cpuMs: all.reduce((n, s) => n + s.cpuMs, 0),
    validated: all.reduce((n, s) => n + s.unitsValidated, 0),
  }
}

function merge(reports: VolunteersReport[]): VolunteersReport {
  const sum = (f: (r: VolunteersReport) => number): number => reports.reduce((n, r) => n + f(r), 0)
  return {
    type: 'report',
    leaseMs: reports.flatMap((r) => r.leaseMs),
    workRequests: sum((r) => r.workRequests),
    emptyGrants: sum((r) => r.emptyGrants),
    resultsAccepted: sum((r) => r.resultsAccepted),
    resultsRejected: sum((r) => r.resultsRejected),
    renewals: sum((r) => r.renewals),
  }
}

/** The crowd: `volunteers` simulated volunteers signed up and connected, not yet asking for work. */
async function startCrowd(
  opts: ScaleOptions,
  deployment: Deployment,
  volunteers: number,
): Promise<VolunteersThread[]> {
  const urls = opts.endpoints.natsAccountSeed === undefined ? [] : deployment.coordinators.map((c) => c.url)
  const threadCount = Math.ceil(volunteers / PER_THREAD)
  const started = await Promise.allSettled(
    Array.from({ length: threadCount }, (_, t) => {
      const first = Math.floor((volunteers * t) / threadCount)
      const count = Math.floor((volunteers * (t + 1)) / threadCount) - first
      return startVolunteersThread(
        {
          natsUrl: opts.endpoints.natsUrl,
          coordinatorUrls: urls,
          subjectPrefix: deployment.subjectPrefix,
          trusted: deployment.trusted,
          count,
          firstIndex: first,
          unitDelayMs: opts.unitDelayMs,
        },
        120_000 + count * 500,
      )
    }),
  )
  const threads = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []))
  const failed = started.find((s) => s.status === 'rejected')
  if (failed !== undefined) {
    await Promise.all(threads.map((t) => t.stop()))
    throw failed.reason
  }
  return threads
}

/** One job on the deployment, the crowd already asking for work: from its POST to its last unit validated. */
async function measureJob(
  opts: ScaleOptions,
  redis: Redis,
  deployment: Deployment,
  crowd: { threads: VolunteersThread[]; volunteers: number; connectSeconds: number },
  report = true,
): Promise<ScaleRun> {
  const { coordinators } = deployment
  const api = connect({ url: coordinators[0]!.url })
  const w = primesWorkload(0, UNIT_SIZE, opts.units)
  const before = merge(await Promise.all(crowd.threads.map((t) => t.report())))
  const calls0 = await redisCalls(redis)
  const t0 = await totals(coordinators)
  const postedAt = now()
  const { id } = await api.submit(jobRequest(w, QUORUM, QUORUM))
  const deadline = postedAt + 120_000 + opts.units * 100
  let t1 = t0
  while (t1.validated - t0.validated < opts.units) {
    if (now() > deadline)
      throw new Error(`only ${t1.validated - t0.validated} of ${opts.units} units validated in time`)
    await sleep(POLL_MS)
    t1 = await totals(coordinators)
  }
  const doneAt = now()
  const calls1 = await redisCalls(redis)
  const after = merge(await Promise.all(crowd.threads.map((t) => t.report())))
  const validated = t1.validated - t0.validated
  const seconds = (doneAt - postedAt) / 1000
  // The job completes (its result assimilated) shortly after its last unit is validated.
  for (let i = 0; (await api.job(id)).state !== 'completed'; i++) {
    if (i > 600) throw new Error(`job ${id} did not complete after its units were validated`)
    await sleep(POLL_MS)
  }
  const leaseMs = after.leaseMs.slice(before.leaseMs.length)
  const workRequests = after.workRequests - before.workRequests
  const run: ScaleRun = {
    volunteers: crowd.volunteers,
    coordinators: coordinators.length,
    units: opts.units,
    seconds: round(seconds, 2),
    unitsPerSecond: round(validated / seconds, 1),
    coordinatorCpuMsPerUnit: round((t1.cpuMs - t0.cpuMs) / validated, 3),
    coordinatorCores: round((t1.cpuMs - t0.cpuMs) / (seconds * 1000), 2),
    redisCallsPerUnit: round((calls1 - calls0) / validated, 1),
    leaseP50Ms: leaseMs.length === 0 ? 0 : round(percentile(leaseMs, 50), 1),
    leaseP99Ms: leaseMs.length === 0 ? 0 : round(percentile(leaseMs, 99), 1),
    workRequestsPerSecond: round(workRequests / seconds, 1),
    emptyShare: workRequests === 0 ? 0 : round((after.emptyGrants - before.emptyGrants) / workRequests, 3),
    renewals: after.renewals - before.renewals,
    resultsRejected: after.resultsRejected - before.resultsRejected,
    connectSeconds: round(crowd.connectSeconds, 1),
  }
  if (report)
    progress(
      `scale ${run.volunteers} volunteers, ${run.coordinators} coordinator(s): ${run.unitsPerSecond} units/s, ` +
        `${run.coordinatorCpuMsPerUnit} ms coordinator CPU/unit (${run.coordinatorCores} cores busy), ${run.redisCallsPerUnit} Redis calls/unit, ` +
        `lease p99 ${run.leaseP99Ms} ms, ${run.workRequestsPerSecond} work requests/s (${(run.emptyShare * 100).toFixed(0)}% empty); ` +
        `crowd connected in ${run.connectSeconds} s`,
    )
  return run
}

/**
 * A fresh deployment and crowd of `volunteers`, one job against one coordinator; with `compare`, then
 * a second coordinator joins and the same crowd computes a second job (signing a thousand volunteers
 * up again would take longer than the runs themselves).
 */
async function measureCrowd(
  opts: ScaleOptions,
  redis: Redis,
  volunteers: number,
  compare: boolean,
): Promise<ScaleRun[]> {
  const deployment = await startDeployment(opts.endpoints, `${volunteers}v`)
  let threads: VolunteersThread[] = []
  try {
    const connectStarted = now()
    threads = await startCrowd(opts, deployment, volunteers)
    const crowd = { threads, volunteers, connectSeconds: (now() - connectStarted) / 1000 }
    await Promise.all(threads.map((t) => t.start()))
    // A coordinator's code is cold when it starts (V8 compiles its hot paths as they run), and how
    // much a crowd's sign-ups and first requests warm it differs with the crowd's size: a short job
    // first, not measured, so that every measured run finds its coordinators equally warm.
    const warmUp = async (): Promise<void> => {
      await sleep(SETTLE_MS / 3)
      const units = Math.min(opts.units, WARMUP_UNITS)
      await measureJob({ ...opts, units }, redis, deployment, crowd, false)
    }
    await warmUp()
    // The crowd asks for work, finds none, and settles into its idle rhythm before the job comes.
    await sleep(SETTLE_MS)
    const runs = [await measureJob(opts, redis, deployment, crowd)]
    if (compare) {
      await deployment.addCoordinator()
      await warmUp()
      await sleep(SETTLE_MS)
      runs.push(await measureJob(opts, redis, deployment, crowd))
    }
    return runs
  } finally {
    await Promise.all(threads.map((t) => t.stop()))
    await deployment.stop()
  }
}

async function measureOverlay(opts: ScaleOptions): Promise<OverlayTraffic[]> {
  // A coordinator only to sign the peers up (their NATS credentials); it plays no part in discovery.
  const deployment = await startDeployment(opts.endpoints, 'overlay')
  try {
    const out: OverlayTraffic[] = []
    for (const peers of opts.overlayPeers) {
      const t = await measureOverlayTraffic({
        natsUrl: opts.endpoints.natsUrl,
        coordinatorUrl:
          opts.endpoints.natsAccountSeed === undefined ? undefined : deployment.coordinators[0]!.url,
        subjectPrefix: deployment.subjectPrefix,
        peers,
        listeners: 4,
        measureMs: opts.overlayMeasureMs,
        announcerLogin: opts.endpoints.natsCoordinator,
      })
      progress(
        `scale overlay ${peers} peers: ${t.bytesPerPeerPerSecond.toFixed(0)} B/s and ` +
          `${t.messagesPerPeerPerSecond.toFixed(1)} messages/s per peer (announcement ${t.announcementBytes} B, ` +
          `listeners knew ${t.knownAtLeast} to ${t.knownAtMost} peers and estimated ` +
          `${t.estimates[0]} to ${t.estimates[1]})`,
      )
      out.push(t)
    }
    return out
  } finally {
    await deployment.stop()
  }
}

export async function runScale(opts: ScaleOptions): Promise<ScaleResult> {
  if (opts.overlayOnly === true)
    return { unitDelayMs: opts.unitDelayMs, runs: [], overlay: await measureOverlay(opts) }
  if (!opts.volunteers.includes(opts.compareAt))
    throw new Error(
      `compareAt (${opts.compareAt}) must be one of the crowd sizes ${opts.volunteers.join(', ')}`,
    )
  const redis = new Redis(opts.endpoints.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2 })
  await redis.connect()
  try {
    const runs: ScaleRun[] = []
    for (const n of opts.volunteers) runs.push(...(await measureCrowd(opts, redis, n, n === opts.compareAt)))
    const overlay = await measureOverlay(opts)
    return { unitDelayMs: opts.unitDelayMs, runs, overlay }
  } finally {
    redis.disconnect()
  }
}

const fmt = (x: number, digits: number): string => x.toFixed(digits)

/** The section's report: one line per figure, then a table of every run. */
export function scaleLines(r: ScaleResult): string {
  const one = r.runs.filter((x) => x.coordinators === 1)
  const sizes = one.map((x) => x.volunteers).join('/')
  const line = (figure: string, f: (x: ScaleRun) => string): string =>
    `scale: ${figure} at ${sizes}: ${one.map(f).join(' / ')}`
  const two = r.runs.find((x) => x.coordinators === 2)
  const oneAt = two === undefined ? undefined : one.find((x) => x.volunteers === two.volunteers)
  const lines = [
    ...(one.length === 0
      ? []
      : [
          line('coordinator CPU ms per validated unit', (x) => fmt(x.coordinatorCpuMsPerUnit, 2)),
          line('lease latency p99 ms', (x) => fmt(x.leaseP99Ms, 1)),
          line('Redis operations per unit', (x) => fmt(x.redisCallsPerUnit, 1)),
        ]),
    `scale: discovery bytes per peer per second at ${r.overlay.map((o) => o.peers).join('/')}: ` +
      r.overlay.map((o) => fmt(o.bytesPerPeerPerSecond, 0)).join(' / '),
  ]
  if (two !== undefined && oneAt !== undefined) {
    lines.push(
      `scale: validated units/s one vs two coordinators at ${two.volunteers}: ` +
        `${fmt(oneAt.unitsPerSecond, 0)} / ${fmt(two.unitsPerSecond, 0)}`,
    )
    // What the coordinators could carry with a core each: whether a second one adds capacity, even
    // where the machine (not the coordinators) limits the measured throughput.
    const perCore = (x: ScaleRun): number => 1000 / x.coordinatorCpuMsPerUnit
    lines.push(
      `scale: units per coordinator CPU-second (busy cores) one vs two coordinators at ${two.volunteers}: ` +
        `${fmt(perCore(oneAt), 0)} (${fmt(oneAt.coordinatorCores, 2)}) / ${fmt(perCore(two), 0)} (${fmt(two.coordinatorCores, 2)})`,
    )
  }
  const table = [
    '| volunteers | coordinators | units/s | coordinator CPU ms/unit | coordinator cores busy | Redis ops/unit | lease p50 / p99 ms | work requests/s | empty grants |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...r.runs.map(
      (x) =>
        `| ${x.volunteers} | ${x.coordinators} | ${fmt(x.unitsPerSecond, 0)} | ${fmt(x.coordinatorCpuMsPerUnit, 2)} | ${fmt(x.coordinatorCores, 2)} | ` +
        `${fmt(x.redisCallsPerUnit, 1)} | ${fmt(x.leaseP50Ms, 1)} / ${fmt(x.leaseP99Ms, 1)} | ` +
        `${fmt(x.workRequestsPerSecond, 0)} | ${fmt(x.emptyShare * 100, 0)} % |`,
    ),
    '',
    '| overlay peers | bytes/s per peer | messages/s per peer | announcement bytes | size estimates |',
    '|---:|---:|---:|---:|---:|',
    ...r.overlay.map(
      (o) =>
        `| ${o.peers} | ${fmt(o.bytesPerPeerPerSecond, 0)} | ${fmt(o.messagesPerPeerPerSecond, 1)} | ` +
        `${o.announcementBytes} | ${o.estimates[0]}–${o.estimates[1]} |`,
    ),
  ]
  return [...lines, '', `Units of ${r.unitDelayMs} ms (a fixed delay) at quorum 2.`, '', ...table].join('\n')
}
