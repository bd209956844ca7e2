// A coordinator's Prometheus metrics (GET /metrics), on its own prom-client registry. The counters
// of /v1/stats are exported as they are, read at each scrape (nothing is counted twice); jobs by
// state, workers online and credit issued are read from Redis at each scrape with bounded calls and
// are the cluster's; lease latency, validation time, refusals by reason and HTTP requests are
// observed here. Process metrics are prom-client's defaults.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { Counters } from '../counters.js'
import type { Timer } from '../nats-service.js'
import type { OpsViews } from '../store/ops-views.js'
import { RUNTIMES, type Activity } from './activity.js'
import { REJECT_CODES, rejectCode } from './reject-codes.js'

export const JOB_STATES = ['queued', 'running', 'completed', 'failed', 'cancelled', 'revising'] as const

/** Help of the counters of /v1/stats that matter most; the others get a generic one. */
const HELP: Partial<Record<keyof Counters, string>> = {
  unitsLeased: 'Replicas leased to workers by this coordinator.',
  unitsValidated: 'Units validated by this coordinator (a credible quorum agreed).',
  unitsReissued: 'Units given another replica because their results disagreed.',
  unitsFailed: 'Units failed: no credible quorum within the replica limit.',
  resultsAccepted: 'Results accepted (stored for validation).',
  resultsDuplicate: 'Results received again for a replica already done.',
  identitiesCaught: 'Identities caught with a result that disagreed with an accepted one.',
  unitsReopened: 'Validated units reopened by backtracking.',
  resultsDiscarded: 'Results of caught identities discarded by backtracking.',
  chunkBytesServed: 'Bytes of dataset chunks and manifests this coordinator served (its egress).',
  moduleBytesServed: 'Bytes of whole modules this coordinator served (its egress).',
}

/** Counters exported otherwise: refusals carry their reason (`cohort_results_rejected_total`). */
const NOT_MIRRORED: ReadonlySet<keyof Counters> = new Set(['resultsRejected'])

const snake = (s: string): string => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)

/** Seconds: a work request is answered in milliseconds; a batch of results may take longer. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

export interface MetricsInit {
  counters: Counters
  views: OpsViews
  activity: Activity
}

export interface Metrics {
  readonly registry: Registry
  /** Lease latency: work request received → grant sent (scheduler). */
  readonly leaseLatency: Timer
  /** Validation time: one signed message's results settled (validator). */
  readonly settleTime: Timer
  /** A result refused, with the validator's reason. */
  rejected(reason: string): void
  /** An HTTP request answered: its method, route template (bounded) and status. */
  http(method: string, route: string, status: number, seconds: number): void
  /** The exposition text and its content type. */
  render(): Promise<{ text: string; contentType: string }>
}

export function createMetrics(init: MetricsInit): Metrics {
  const { counters, views, activity } = init
  const registry = new Registry()
  const registers = [registry]
  collectDefaultMetrics({ register: registry })

  for (const key of Object.keys(counters) as (keyof Counters)[]) {
    if (NOT_MIRRORED.has(key)) continue
    new Counter({
      name: `cohort_${snake(key)}_total`,
      help: HELP[key] ?? `The coordinator's counter ${key} (as in /v1/stats).`,
      registers,
      collect() {
        this.reset()
        this.inc(counters[key])
      },
    })
  }
  const rejectedBy = new Counter({
    name: 'cohort_results_rejected_total',
    help: 'Results refused by this coordinator, by reason.',
    labelNames: ['reason'],
    registers,
  })
  for (const reason of REJECT_CODES) rejectedBy.inc({ reason }, 0)

  const leaseLatency = new Histogram({
    name: 'cohort_lease_latency_seconds',
    help: 'Work request received to grant sent.',
    buckets: LATENCY_BUCKETS,
    registers,
  })
  const settleTime = new Histogram({
    name: 'cohort_validation_seconds',
    help: "One signed message's results checked, stored and their units decided.",
    buckets: LATENCY_BUCKETS,
    registers,
  })

  new Gauge({
    name: 'cohort_jobs',
    help: 'Jobs by state (cluster-wide, over the newest 10,000 jobs retained).',
    labelNames: ['state'],
    registers,
    async collect() {
      const byState = await views.jobsByState()
      for (const state of JOB_STATES) this.set({ state }, byState.get(state) ?? 0)
    },
  })
  new Gauge({
    name: 'cohort_workers_online',
    help: 'Identities that asked for work in the last minute, by runtime (cluster-wide).',
    labelNames: ['runtime'],
    registers,
    async collect() {
      const online = await activity.online(Date.now())
      for (const runtime of RUNTIMES) this.set({ runtime }, online[runtime])
    },
  })
  new Gauge({
    name: 'cohort_credit_issued_seconds',
    help: 'Credit issued for validated work, seconds of estimated compute (cluster-wide, net of backtracking).',
    registers,
    async collect() {
      this.set((await views.creditIssuedMs()) / 1000)
    },
  })

  const httpRequests = new Counter({
    name: 'cohort_http_requests_total',
    help: 'HTTP requests answered, by method, route template and status.',
    labelNames: ['method', 'route', 'status'],
    registers,
  })
  const httpSeconds = new Histogram({
    name: 'cohort_http_request_duration_seconds',
    help: 'HTTP request duration, by route template.',
    labelNames: ['route'],
    buckets: LATENCY_BUCKETS,
    registers,
  })

  return {
    registry,
    leaseLatency,
    settleTime,
    rejected(reason) {
      rejectedBy.inc({ reason: rejectCode(reason) })
    },
    http(method, route, status, seconds) {
      httpRequests.inc({ method, route, status: String(status) })
      httpSeconds.observe({ route }, seconds)
    },
    async render() {
      return { text: await registry.metrics(), contentType: registry.contentType }
    },
  }
}
