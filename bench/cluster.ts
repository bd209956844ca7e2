// An in-process Cohort deployment for benchmarks: one coordinator on this thread and worker daemons on a
// thread of their own (worker-host.ts), on the given Redis and NATS, with a Redis key prefix and NATS
// subject prefix of their own (as the test cluster does).
import { randomBytes } from 'node:crypto'
import {
  createCoordinator,
  type Coordinator,
  type CoordinatorTuning,
  type JobRecord,
} from '../coordinator/index.js'
import { builtinJobTypes } from '../jobs/index.js'
import { connect, type Client, type SubmitRequest } from '../client/index.js'
import { generateIdentity, type Identity } from '../shared/index.js'
import { BENCH_API_TUNING } from './api-access.js'
import { benchLogger } from './log.js'
import { BENCH_SIGNUP_TUNING, coordinatorLogin, type NatsLogin } from './nats-login.js'
import { now, sleep } from './stats.js'
import { startWorkerHost, type WorkerHost } from './worker-host-client.js'
import type { WorkerSpec } from './worker-host-protocol.js'

export type { WorkerSpec } from './worker-host-protocol.js'

export interface Endpoints {
  redisUrl: string
  natsUrl: string
  /** The coordinator's NATS login, when the server requires one. */
  natsCoordinator?: NatsLogin | undefined
  /** The NATS account seed: the coordinator then signs volunteers up, and they connect with their own credentials. */
  natsAccountSeed?: string | undefined
}

export interface BenchCluster {
  coordinator: Coordinator
  /** NATS subject prefix of this cluster (raw protocol clients need it). */
  subjectPrefix: string
  /** The coordinator's signing key, as volunteers trust it (raw protocol clients need it). */
  trusted: { keyId: string; publicKey: Uint8Array }
  api: Client
  workers: WorkerHost
  /** POST a job and wait, polling the coordinator's store, until it has completed. */
  runJob(body: SubmitRequest, opts?: RunJobOptions): Promise<JobRun>
  stop(): Promise<void>
}

export interface RunJobOptions {
  /**
   * How often the job's state is read. Default 50 ms: the completion time is the coordinator's own
   * (the record's `updatedAt` when it completed), so reading more often would only take CPU from the
   * platform being measured (this process runs its coordinator).
   */
  pollMs?: number
  /** Give up (throw) after this long. Default 120000 ms. */
  timeoutMs?: number
  /** Called on every poll while the job runs (extra measurements). */
  onPoll?: () => void
}

export interface JobRun {
  id: string
  /** `now()` just before the POST was sent. */
  postedAt: number
  /** When the coordinator completed the job (its record's `updatedAt`), on the `now()` clock. */
  completedAt: number
  record: JobRecord
}

function uniquePrefix(label: string): string {
  return `bench-${label}-${process.pid}-${randomBytes(4).toString('hex')}`
}

async function waitCompleted(
  coordinator: Coordinator,
  id: string,
  opts: RunJobOptions,
): Promise<{ record: JobRecord; at: number }> {
  const pollMs = opts.pollMs ?? 50
  const deadline = now() + (opts.timeoutMs ?? 120_000)
  for (;;) {
    opts.onPoll?.()
    const record = await coordinator.store.getJob(id)
    const at = now()
    if (record?.state === 'completed') return { record, at }
    if (record?.state === 'failed' || record?.state === 'cancelled') {
      throw new Error(`job ${id} ${record.state}: ${record.error ?? 'no reason given'}`)
    }
    if (at > deadline) throw new Error(`job ${id} still ${record?.state ?? 'unknown'} after the timeout`)
    await sleep(pollMs)
  }
}

/** A benchmark's coordinator on `endpoints` (not started yet), signing with `identity`. */
export function benchCoordinator(
  endpoints: Endpoints,
  tuning: Partial<CoordinatorTuning>,
  identity: Identity,
): Coordinator {
  return createCoordinator({
    redisUrl: endpoints.redisUrl,
    natsUrl: endpoints.natsUrl,
    ...coordinatorLogin(endpoints.natsCoordinator, endpoints.natsAccountSeed),
    identity,
    jobTypes: builtinJobTypes.values(),
    log: benchLogger('coordinator'),
    port: 0,
    tuning,
  })
}

export async function startBenchCluster(init: {
  endpoints: Endpoints
  workers: WorkerSpec[]
  label: string
  /** Coordinator options beyond the defaults (prefixes are always the cluster's own). */
  tuning?: Partial<CoordinatorTuning>
}): Promise<BenchCluster> {
  const { endpoints } = init
  const subjectPrefix = uniquePrefix(init.label)
  const identity = await generateIdentity(true)
  const trusted = { keyId: identity.keyId, publicKey: identity.publicKey }
  const coordinator = benchCoordinator(
    endpoints,
    {
      ...BENCH_SIGNUP_TUNING,
      ...BENCH_API_TUNING,
      ...init.tuning,
      redisPrefix: `${uniquePrefix(init.label)}:`,
      subjectPrefix,
    },
    identity,
  )
  await coordinator.start()
  let workers: WorkerHost
  try {
    workers = await startWorkerHost({
      natsUrl: endpoints.natsUrl,
      ...(endpoints.natsAccountSeed === undefined ? {} : { coordinatorUrl: coordinator.url }),
      subjectPrefix,
      trusted,
      workers: init.workers,
    })
  } catch (err) {
    await coordinator.stop()
    throw err
  }

  const api = connect({ url: coordinator.url })
  return {
    coordinator,
    subjectPrefix,
    trusted,
    api,
    workers,
    async runJob(body, opts = {}) {
      const postedAt = now()
      const postedWall = Date.now()
      const { id } = await api.submit(body)
      const { record, at } = await waitCompleted(coordinator, id, opts)
      // The coordinator stamps the completion with Date.now(); both clocks are this machine's.
      const completedAt = Math.min(at, postedAt + Math.max(0, record.updatedAt - postedWall))
      return { id, postedAt, completedAt, record }
    },
    async stop() {
      await workers.stop()
      await coordinator.stop()
    },
  }
}
