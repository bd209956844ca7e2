// Hoarding: how long one job takes when identities that never compute take all the leases they may
// and renew them for ever, against the same job with no hoarders. Each hoarder speaks the protocol
// itself (its own key and NATS connection): it asks for as many units as one request may carry
// whenever work is announced (and every 100 ms), and renews everything it holds. The lease rules
// (per-identity cap, lifetime bound, no unit back to a worker that lost it) are what keeps the job
// going. Both modes run the same job on identically configured honest daemons, alternating, each
// on a fresh coordinator (so no identity carries earned standing from one run to the next).
import type { NatsConnection } from '@nats-io/nats-core'
import type { CoordinatorTuning, Counters } from '../coordinator/index.js'
import {
  generateIdentity,
  openUnit,
  parseUnitPayload,
  subjectsFor,
  WORK_AVAILABLE_QUEUE,
} from '../shared/index.js'
import { createCoordinatorClient } from '../worker/index.js'
import { startBenchCluster, type Endpoints } from './cluster.js'
import { volunteerConnection } from './nats-login.js'
import { progress } from './log.js'
import { median, now, round, sleep } from './stats.js'

export interface HoardingOptions {
  endpoints: Endpoints
  /** Hoarding identities in the attacked mode. */
  hoarders: number
  /** Units of the job (primes, 10^6 numbers each), quorum 2. */
  units: number
  workers: number
  threadsPerWorker: number
  /** Runs per mode; the median is reported. */
  repeats: number
}

/** Short leases so that the run takes seconds, not the default minutes; everything else is default. */
export const HOARDING_TUNING: Partial<CoordinatorTuning> = {
  leaseMs: 2_000,
  leaseLifetimeFloorMs: 5_000,
  reapIntervalMs: 200,
}

export interface HoardingRun {
  hoarders: number
  /** POST until the job completed (or failed). */
  ms: number
  state: 'completed' | 'failed'
  error?: string
  /** Leases the hoarders were granted in all. */
  hoardedLeases: number
  /** Coordinator counters at the end. */
  leasesExpired: number
  renewalsRefused: number
  leaseCapReached: number
  workRequestsLimited: number
}

export interface HoardingResult {
  units: number
  quorum: number
  hoarders: number
  workers: number
  threadsPerWorker: number
  tuning: Partial<CoordinatorTuning>
  runs: HoardingRun[]
  /** Median completion time with hoarders / without. */
  ratio: number
  medianMs: { without: number; with: number }
}

const UNIT_SIZE = 1_000_000
const PRIMES = 'primes@1'

interface Hoarder {
  held: Set<string>
  granted: number
  stop(): Promise<void>
}

async function startHoarder(
  natsUrl: string,
  coordinatorUrl: string | undefined,
  subjectPrefix: string,
): Promise<Hoarder> {
  const identity = await generateIdentity(true)
  // Each hoarder signs up like any volunteer: it has credentials of its own, nothing more.
  const nats: NatsConnection = await volunteerConnection(natsUrl, coordinatorUrl, identity, 'bench-hoarder')
  const subjects = subjectsFor(subjectPrefix)
  const client = createCoordinatorClient({ nats, identity, subjects, timeoutMs: 5_000 })
  const held = new Set<string>()
  const state = { granted: 0 }
  let stopped = false
  let wake: (() => void) | undefined
  const sub = nats.subscribe(subjects.workAvailable, {
    queue: WORK_AVAILABLE_QUEUE,
    callback: () => wake?.(),
  })
  let lastRenew = 0
  const loop = (async () => {
    while (!stopped) {
      const grant = await client.requestWork(64, [PRIMES]).catch(() => undefined)
      for (const u of grant?.units ?? []) {
        held.add(parseUnitPayload(await openUnit(u)).replicaId)
        state.granted++
      }
      if (held.size > 0 && Date.now() - lastRenew > HOARDING_TUNING.leaseMs! / 3) {
        lastRenew = Date.now()
        const renewed = await client.renew([...held]).catch(() => undefined)
        for (const rid of renewed?.lost ?? []) held.delete(rid)
      }
      const waitMs = grant?.limit?.by === 'rate' ? grant.retryAfterMs : 100
      await Promise.race([sleep(waitMs), new Promise<void>((r) => (wake = r))])
    }
  })()
  return {
    held,
    get granted() {
      return state.granted
    },
    async stop() {
      stopped = true
      wake?.()
      await loop
      sub.unsubscribe()
      await nats.close()
    },
  }
}

async function runOnce(opts: HoardingOptions, hoarders: number): Promise<HoardingRun> {
  const cluster = await startBenchCluster({
    endpoints: opts.endpoints,
    workers: Array.from({ length: opts.workers }, () => ({ threads: opts.threadsPerWorker })),
    label: `hoard${hoarders}`,
    tuning: HOARDING_TUNING,
  })
  const attackers: Hoarder[] = []
  try {
    for (let i = 0; i < hoarders; i++)
      attackers.push(
        await startHoarder(
          opts.endpoints.natsUrl,
          opts.endpoints.natsAccountSeed === undefined ? undefined : cluster.coordinator.url,
          cluster.subjectPrefix,
        ),
      )
    const started = now()
    const body = {
      type: 'primes',
      params: { to: opts.units * UNIT_SIZE, unitSize: UNIT_SIZE },
      redundancy: { quorum: 2 },
    }
    let state: HoardingRun['state'] = 'completed'
    let error: string | undefined
    try {
      await cluster.runJob(body, {
        pollMs: 20,
        timeoutMs: 600_000,
      })
    } catch (err) {
      state = 'failed'
      error = (err as Error).message
    }
    const ms = now() - started
    const c: Counters = cluster.coordinator.counters
    return {
      hoarders,
      ms: round(ms, 0),
      state,
      ...(error === undefined ? {} : { error }),
      hoardedLeases: attackers.reduce((n, a) => n + a.granted, 0),
      leasesExpired: c.leasesExpired,
      renewalsRefused: c.renewalsRefused,
      leaseCapReached: c.leaseCapReached,
      workRequestsLimited: c.workRequestsLimited,
    }
  } finally {
    await Promise.all(attackers.map((a) => a.stop()))
    await cluster.stop()
  }
}

export async function runHoarding(opts: HoardingOptions): Promise<HoardingResult> {
  const runs: HoardingRun[] = []
  for (let r = 0; r < opts.repeats; r++) {
    // Alternate which mode goes first, so drift of the machine's load favours neither.
    const order = r % 2 === 0 ? [0, opts.hoarders] : [opts.hoarders, 0]
    for (const h of order) {
      const run = await runOnce(opts, h)
      progress(`hoarding: ${h} hoarders, ${run.state} in ${run.ms} ms (${run.hoardedLeases} leases hoarded)`)
      runs.push(run)
    }
  }
  const med = (h: number): number => median(runs.filter((x) => x.hoarders === h).map((x) => x.ms))
  const without = med(0)
  const withH = med(opts.hoarders)
  return {
    units: opts.units,
    quorum: 2,
    hoarders: opts.hoarders,
    workers: opts.workers,
    threadsPerWorker: opts.threadsPerWorker,
    tuning: HOARDING_TUNING,
    runs,
    ratio: round(withH / without, 2),
    medianMs: { without: round(without, 0), with: round(withH, 0) },
  }
}
