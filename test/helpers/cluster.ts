// Test helper: a Cohort cluster on a test file's private Redis and NATS — coordinators and worker
// daemons in this process (or as child processes, for kill -9), each test with its own Redis key
// prefix and NATS subject prefix so tests never see each other's units.
import type { NatsConnection } from '@nats-io/nats-core'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { connectRedis, parseRedisTarget } from '../../coordinator/redis-connection.js'
import {
  createCoordinator,
  createStore,
  type Coordinator,
  type CoordinatorTuning,
} from '../../coordinator/index.js'
import { builtinJobTypes } from '../../jobs/index.js'
import {
  createLogger,
  exportIdentity,
  generateIdentity,
  type Identity,
  type LogRecord,
} from '../../shared/index.js'
import { connect, type Client, type JobView } from '../../client/index.js'
import {
  createPoolRunner,
  createWorkerDaemon,
  trustedKeysFrom,
  type PeerOptions,
  type Runner,
  type WorkerDaemon,
} from '../../worker/index.js'
import type { TestServices } from './services.js'
import { uniquePrefix } from './services.js'
import { connectVolunteer, issuedAccess, type SignupAccess } from './volunteer.js'
import { spawnLines, type LineChild } from './line-child.js'
import { writeFile } from 'node:fs/promises'

export const CLI = fileURLToPath(new URL('../../../bin/cohort.js', import.meta.url))

/** Logs are kept in memory and printed only when COHORT_TEST_LOG is set. */
export function testLogger(ns: string) {
  const records: LogRecord[] = []
  const log = createLogger(
    ns,
    (r) => {
      records.push(r)
      if (records.length > 5000) records.splice(0, 1000)
      if (process.env['COHORT_TEST_LOG']) console.error(JSON.stringify(r))
    },
    process.env['COHORT_TEST_LOG'] ? 'debug' : 'info',
  )
  return { log, records }
}

export interface TestWorker {
  daemon: WorkerDaemon
  identity: Identity
  nats: NatsConnection
  stop(): Promise<void>
}

export interface ClusterInit {
  services: TestServices
  coordinators?: number
  tuning?: Partial<CoordinatorTuning>
  /**
   * Vouch for the worker daemons `addWorker` starts and for every identity that signs up with this
   * cluster's coordinators (`vouchSignups`), as `cohort up` does for its own daemons (default true):
   * their results anchor units from the first one. Tests of earned trust set false and vouch for
   * their honest workers with `addWorker({ vouch: true })` or `vouch(...)`.
   */
  vouch?: boolean
  /** Where the coordinators connect to NATS (default the services' NATS URL). */
  coordinatorNatsUrl?: string
}

export interface Cluster {
  redisPrefix: string
  subjectPrefix: string
  identity: Identity
  coordinators: Coordinator[]
  api: Client
  workers: TestWorker[]
  addCoordinator(): Promise<Coordinator>
  addWorker(opts?: {
    threads?: number
    wrap?: (r: Runner) => Runner
    identity?: Identity
    bufferUnits?: number
    /** How long stop() waits for running units (default 5 s). */
    drainTimeoutMs?: number
    /**
     * How long a request to the coordinators may take (default 2 s, so tests that stop a coordinator
     * fail over quickly). Tests whose point is a claim or handoff going through give it longer: on a
     * loaded machine a claim can take seconds.
     */
    requestTimeoutMs?: number
    /** Peer exchange options (default: on, announcing every 250 ms so tests need not wait). */
    peers?: PeerOptions | false
    /** The coordinator to sign up with (default: the first of this cluster). */
    coordinatorUrl?: string
    /** Vouch for this worker (default: as the cluster's `vouch`). */
    vouch?: boolean
    /** Where this worker connects to NATS (default the services' NATS URL; several comma-separated). */
    natsUrl?: string
  }): Promise<TestWorker>
  /** Where a volunteer of this cluster signs up (the first coordinator) and connects. */
  readonly volunteerAccess: SignupAccess
  /** Vouch for identities as the operator's own hosts (for raw volunteers that play honest workers). */
  vouch(...ids: string[]): Promise<void>
  /** Environment-style arguments for a `cohort` child process of this cluster. */
  cliArgs: { natsUrl: string; redisUrl: string; trust: string }
  /** Arguments of a `cohort worker` child process of this cluster, with its key file. */
  workerArgs(keyFile: string, ...extra: string[]): string[]
  /**
   * Arguments of a `cohort coordinator` child process of this cluster (any free port, this cluster's
   * Redis and NATS, key prefixes), with its key file; spawn it with `coordinatorEnv`.
   */
  coordinatorArgs(keyFile: string, ...extra: string[]): string[]
  /** Environment giving a coordinator child process the coordinators' NATS login and the account seed. */
  coordinatorEnv: Record<string, string>
  /** Writes the coordinator key to a file (for coordinator child processes). */
  writeCoordinatorKey(dir: string): Promise<string>
  stop(): Promise<void>
}

export async function startCluster(init: ClusterInit): Promise<Cluster> {
  const { services } = init
  const target = parseRedisTarget(services.redisUrl)
  // On a Redis Cluster the prefix carries a hash tag: all of the deployment's keys in one slot.
  const redisPrefix = target.cluster ? `{${uniquePrefix('c')}}:` : `${uniquePrefix('c')}:`
  const subjectPrefix = uniquePrefix('s')
  const identity = await generateIdentity(true)
  const coordinators: Coordinator[] = []
  const workers: TestWorker[] = []
  const tuning: Partial<CoordinatorTuning> = {
    redisPrefix,
    subjectPrefix,
    reapIntervalMs: 200,
    sweepIntervalMs: 500,
    // Every worker of a test signs up from 127.0.0.1, cheaply: tests of sign-up itself set their own.
    signupPowBits: 8,
    signupPerAddress: 10_000,
    // Many tests hand a unit's replicas to two raw volunteers back to back on purpose: no spread in
    // time between them. test/placement.test.ts tests the spread, and ordinary jobs under it.
    replicaSpreadMs: 0,
    // Tests of other features call the API without a key: anonymous callers, without limits.
    // test/api-owners.test.ts sets its own keys, quotas and anonymous setting.
    anonymous: true,
    anonymousQuota: { unitsInFlight: null, storedBytes: null, requestsPerMinute: null, maxPriority: 100 },
    // Every identity that signs up is the test's own host, unless the test is about earned trust.
    vouchSignups: init.vouch !== false,
    ...init.tuning,
  }

  const addCoordinator = async (): Promise<Coordinator> => {
    const c = createCoordinator({
      redisUrl: services.redisUrl,
      natsUrl: init.coordinatorNatsUrl ?? services.natsUrl,
      ...(services.natsCoordinator === undefined ? {} : { natsCredentials: services.natsCoordinator }),
      ...(services.natsAccountSeed === undefined ? {} : { natsAccountSeed: services.natsAccountSeed }),
      identity,
      jobTypes: builtinJobTypes.values(),
      log: testLogger('coordinator').log,
      port: 0,
      tuning,
      // The browser contributor at /contribute, when the private nats-server has a WebSocket listener.
      ...(services.natsWsUrl === undefined ? {} : { contribute: { natsWsUrl: services.natsWsUrl } }),
    })
    await c.start()
    coordinators.push(c)
    return c
  }

  const addWorker: Cluster['addWorker'] = async (opts = {}) => {
    const wid = opts.identity ?? (await generateIdentity(true))
    // Signs up with the first coordinator, as `cohort worker --coordinator` does.
    // With no coordinator (tests that play the coordinator themselves), credentials are issued with
    // the deployment's account seed, exactly as a coordinator would issue them.
    const natsUrl = opts.natsUrl ?? services.natsUrl
    const signup =
      opts.coordinatorUrl !== undefined
        ? { natsUrl, coordinatorUrl: opts.coordinatorUrl }
        : coordinators.length === 0
          ? { ...issuedAccess(services, subjectPrefix), natsUrl }
          : { ...access(), natsUrl }
    const nats = await connectVolunteer(signup, wid, { reconnect: true })
    if (opts.vouch ?? init.vouch !== false) await vouch(wid.id)
    const base = createPoolRunner({ threads: opts.threads ?? 1 })
    const daemon = createWorkerDaemon({
      nats,
      identity: wid,
      trusted: trustedKeysFrom([{ keyId: identity.keyId, publicKey: identity.publicKey }]),
      runner: opts.wrap === undefined ? base : opts.wrap(base),
      jobTypes: builtinJobTypes.values(),
      log: testLogger('worker').log,
      subjectPrefix,
      requestTimeoutMs: opts.requestTimeoutMs ?? 2_000,
      drainTimeoutMs: opts.drainTimeoutMs ?? 5_000,
      ...(opts.bufferUnits === undefined ? {} : { bufferUnits: opts.bufferUnits }),
      peers: opts.peers ?? { announceMs: 250 },
    })
    daemon.start()
    const w: TestWorker = {
      daemon,
      identity: wid,
      nats,
      async stop() {
        await daemon.stop()
        await nats.drain().catch(() => nats.close())
      },
    }
    workers.push(w)
    return w
  }

  // Vouching goes straight to the cluster's Redis: a worker may sign up with a coordinator the
  // cluster did not start (a CLI child process).
  let admin: { redis: Redis; store: ReturnType<typeof createStore> } | undefined
  const vouch = async (...ids: string[]): Promise<void> => {
    if (admin === undefined) {
      const redis = connectRedis(target, {})
      redis.on('error', () => undefined)
      admin = { redis, store: createStore({ redis, prefix: redisPrefix }) }
    }
    await admin.store.vouch(ids)
  }

  const access = (): SignupAccess => {
    const c = coordinators[0]
    if (c === undefined) throw new Error('no coordinator')
    return { natsUrl: services.natsUrl, coordinatorUrl: c.url }
  }

  for (let i = 0; i < (init.coordinators ?? 1); i++) await addCoordinator()

  return {
    redisPrefix,
    subjectPrefix,
    identity,
    coordinators,
    get api() {
      const c = coordinators[0]
      if (c === undefined) throw new Error('no coordinator')
      return connect({ url: c.url })
    },
    workers,
    get volunteerAccess() {
      return access()
    },
    addCoordinator,
    addWorker,
    vouch,
    cliArgs: { natsUrl: services.natsUrl, redisUrl: services.redisUrl, trust: identity.id },
    workerArgs: (keyFile, ...extra) => [
      'worker',
      '--nats-url',
      services.natsUrl,
      '--trust',
      identity.id,
      '--key-file',
      keyFile,
      '--subject-prefix',
      subjectPrefix,
      '--coordinator',
      access().coordinatorUrl,
      ...extra,
    ],
    coordinatorArgs: (keyFile, ...extra) => [
      'coordinator',
      '--port',
      '0',
      '--redis-url',
      services.redisUrl,
      '--nats-url',
      services.natsUrl,
      '--key-file',
      keyFile,
      '--redis-prefix',
      redisPrefix,
      '--subject-prefix',
      subjectPrefix,
      ...extra,
    ],
    coordinatorEnv:
      services.natsFiles === undefined
        ? {}
        : {
            NATS_CREDS: services.natsFiles.creds,
            COHORT_NATS_ACCOUNT_SEED_FILE: services.natsFiles.accountSeed,
          },
    async writeCoordinatorKey(dir) {
      const path = join(dir, `${uniquePrefix('key')}.json`)
      await writeFile(path, JSON.stringify(await exportIdentity(identity)), { mode: 0o600 })
      return path
    },
    async stop() {
      await Promise.allSettled(workers.map((w) => w.stop()))
      await Promise.allSettled(coordinators.map((c) => c.stop()))
      admin?.redis.disconnect()
    },
  }
}

/** Each unit's stored results (replica, digest, worker), read through a coordinator's store. */
export async function jobUnitResults(cluster: Cluster, jobId: string, total: number) {
  const store = cluster.coordinators[0]?.store
  if (store === undefined) throw new Error('no coordinator')
  return Promise.all(Array.from({ length: total }, (_, i) => store.unitResults(`${jobId}:${i}`)))
}

/** Poll a job until it reaches a final state (a condition, not a fixed sleep), within `timeoutMs`. */
export async function waitForJob(
  api: Pick<Client, 'job'>,
  id: string,
  timeoutMs = 120_000,
): Promise<JobView> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const job = await api.job(id)
    if (job.state === 'completed' || job.state === 'failed' || job.state === 'cancelled') return job
    if (Date.now() > deadline)
      throw new Error(`job ${id} still ${job.state} after ${timeoutMs} ms: ${JSON.stringify(job)}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** Wait until `predicate` holds, checking every 25 ms, within `timeoutMs`. */
export async function waitUntil(
  what: string,
  predicate: () => boolean | Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

/** The state of every replica of this cluster that was ever leased to `worker`, read from Redis. */
export async function replicaStates(cluster: Cluster, worker: string): Promise<string[]> {
  const redis = new Redis(cluster.cliArgs.redisUrl)
  try {
    const keys = await redis.keys(`${cluster.redisPrefix}replica:*`)
    const rows = await Promise.all(keys.map((k) => redis.hmget(k, 'state', 'worker')))
    return rows.filter(([, w]) => w === worker).map(([state]) => state ?? '')
  } finally {
    redis.disconnect()
  }
}

export type ChildCohort = LineChild

/** Run `cohort <args>` as a child process with debug logs on stderr. */
export function spawnCohort(args: string[], env: Record<string, string> = {}): ChildCohort {
  return spawnLines(process.execPath, [CLI, ...args], {
    env: { ...process.env, COHORT_LOG_LEVEL: 'debug', ...env },
  })
}

export type { JobView }
