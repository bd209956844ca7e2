// One coordinator process: wires the store, pipeline, scheduler, validator and HTTP API together.
// It keeps no state outside Redis, so any number may run against one Redis and one NATS.
import { connect } from '@nats-io/transport-node'
import { AuthorizationError, jwtAuthenticator, type NatsConnection } from '@nats-io/nats-core'
import { checkPrefixFor, connectRedis, parseRedisTarget } from './redis-connection.js'
import { trustParamsOf } from './trust-params.js'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type Koa from 'koa'
import {
  ConfigError,
  errorFields,
  kindOf,
  natsServers,
  subjectsFor,
  type AnyJobType,
  type Identity,
  type Logger,
} from '../shared/index.js'
import { createBacktracker, type Backtracker } from './backtracker.js'
import { createClaimService } from './claim-service.js'
import { createClientNetworkRules } from './credentials/client-network.js'
import { createSignupService } from './credentials/signup-service.js'
import { createVolunteerIssuer } from './credentials/volunteer-issuer.js'
import { createChunkService } from './content/chunk-service.js'
import { createDatasetStore, type DatasetStore } from './content/dataset-store.js'
import { createLeaseNeeds } from './content/lease-needs.js'
import { createUploadReaper } from './content/upload-reaper.js'
import { createUploads, type Uploads } from './content/uploads.js'
import { createCounters, type Counters } from './counters.js'
import { createEgressBudget } from './egress-budget.js'
import { createApp } from './http/app.js'
import { createEventStreams } from './event-streams.js'
import { contributeMiddleware } from './http/contribute.js'
import { volunteersRouter } from './http/volunteers-routes.js'
import { standingRouter } from './http/standing-routes.js'
import { createVolunteerStore } from './store/volunteer-store.js'
import type { RouteInfo } from './http/routes.js'
import { resolveTuning, type CoordinatorTuning } from './options.js'
import { createPipeline } from './pipeline.js'
import { createPlanner } from './planner/planner.js'
import { createSpeedStore } from './store/speed-store.js'
import { createScheduler } from './scheduler.js'
import { createStore, type Store } from './store/store.js'
import { createContentStore, type ContentStore } from './modules/content-store.js'
import { createModuleService } from './modules/module-service.js'
import { createUnitSigner } from './unit-signer.js'
import { createValidator } from './validator.js'
import { createActivity } from './metrics/activity.js'
import { createMetrics } from './metrics/metrics.js'
import { createOpsViews } from './store/ops-views.js'
import { withTimeout } from './with-timeout.js'

export interface CoordinatorInit {
  /** `redis://host:port` (one Redis), or `redis-cluster://host:port,host:port` (a Redis Cluster; docs/redis-cluster.md). */
  redisUrl: string
  /** NATS: one URL, or several separated by commas (the nodes of a NATS cluster). */
  natsUrl: string
  /** NATS user and password, when the server requires them. */
  natsUser?: string
  natsPass?: string
  /** A NATS user JWT and its nkey seed (a `.creds` file's two parts): the login on a server in operator mode. */
  natsCredentials?: { jwt: string; seed: string }
  /**
   * Seed of the deployment's NATS account (`SA…`): with it the coordinator issues volunteers their
   * credentials at POST /v1/volunteers. Without it, sign-up answers 503.
   */
  natsAccountSeed?: string
  /** The coordinator's signing key; workers trust its public half. */
  identity: Identity
  jobTypes: Iterable<AnyJobType>
  log: Logger
  /** HTTP port; 0 picks a free one. Default 8080. */
  port?: number
  /** HTTP bind address. Default 127.0.0.1. */
  host?: string
  tuning?: Partial<CoordinatorTuning>
  /** Extra HTTP middleware. */
  extraHttp?: Koa.Middleware[]
  /**
   * Serve the browser contributor at /contribute. `natsWsUrl` is the NATS WebSocket listener browsers
   * connect to (a full ws:// or wss:// URL); `trust` adds coordinator keys to this one's (several
   * coordinators with their own keys behind one address). Default: not served.
   */
  contribute?: { natsWsUrl: string; trust?: string[] }
}

export interface Coordinator {
  start(): Promise<void>
  stop(): Promise<void>
  /** Base URL of the HTTP API once started, e.g. http://127.0.0.1:8080. */
  readonly url: string
  /** Every route of the HTTP API (each documented in GET /openapi.json), once started. */
  readonly routes: readonly RouteInfo[]
  readonly counters: Counters
  /** Job event streams (GET /v1/jobs/:id/events) open now. */
  readonly eventStreams: number
  readonly store: Store
  /** WebAssembly modules, by SHA-256 hex. */
  readonly modules: ContentStore
  /** Datasets: chunks and manifests, by SHA-256 hex. */
  readonly datasets: DatasetStore
  /** Who holds which upload (module, blob, dataset), until when. */
  readonly uploads: Uploads
  /**
   * Backtrack an identity caught with a wrong result (see Backtracker.backtrack): banned at once,
   * every unit it returned a result for validated again. Only once started.
   */
  backtrack(worker: string, reason: string): Promise<void>
}

/**
 * A coordinator must be allowed to listen on the request subjects. On a server with roles, a
 * connection without the coordinators' credentials is a volunteer: say so at start, instead of
 * running deaf while workers hear "no responders".
 */
async function checkCoordinatorRole(nc: NatsConnection, subject: string): Promise<void> {
  let refused: Error | undefined
  const probe = nc.subscribe(subject, {
    callback: (err) => {
      if (err) refused = err
    },
  })
  await nc.flush()
  probe.unsubscribe()
  if (refused !== undefined) {
    throw new ConfigError(
      `NATS does not let this coordinator listen on ${subject} (${refused.message}); ` +
        "log in with the coordinators' credentials (NATS_CREDS, or NATS_USER / NATS_PASS)",
    )
  }
}

export function createCoordinator(init: CoordinatorInit): Coordinator {
  const tuning = resolveTuning(init.tuning)
  const log = init.log
  const counters = createCounters()
  const jobTypes = new Map<string, AnyJobType>()
  for (const t of init.jobTypes) jobTypes.set(kindOf(t), t)
  const subjects = subjectsFor(tuning.subjectPrefix)
  const extraHttp = [...(init.extraHttp ?? [])]
  if (init.contribute !== undefined) {
    extraHttp.push(
      contributeMiddleware({
        natsWsUrl: init.contribute.natsWsUrl,
        subjectPrefix: tuning.subjectPrefix,
        trust: [...new Set([init.identity.id, ...(init.contribute.trust ?? [])])],
      }),
    )
  }
  const target = parseRedisTarget(init.redisUrl)
  checkPrefixFor(target, tuning.redisPrefix)
  const redis = connectRedis(target, {
    lazyConnect: true,
    maxRetriesPerRequest: 3,
    connectionName: 'cohort-coordinator',
    // Commands issued in one turn of the event loop (a batch's scripts, many requests served at
    // once) leave in one write.
    enableAutoPipelining: true,
  })
  const bullConnection = connectRedis(target, { lazyConnect: true, maxRetriesPerRequest: null })
  redis.on('error', (err) => log.warn('redis error', errorFields(err)))
  bullConnection.on('error', (err) => log.warn('redis error', errorFields(err)))
  const store = createStore({
    redis,
    prefix: tuning.redisPrefix,
    waitReplicas: tuning.redisWaitReplicas,
    waitTimeoutMs: tuning.redisWaitTimeoutMs,
    onWaitShort: (acked, wanted) => log.warn('redis WAIT: fewer replicas than asked', { acked, wanted }),
  })
  const eventStreams = createEventStreams({
    redis,
    prefix: tuning.redisPrefix,
    maxStreams: tuning.eventStreamsMax,
    heartbeatMs: tuning.eventHeartbeatMs,
    maxDurationMs: tuning.eventStreamMaxMs,
    log: log.child('events'),
  })
  const modules = createContentStore({ redis, prefix: tuning.redisPrefix })
  const blobs = createContentStore({ redis, prefix: tuning.redisPrefix, namespace: 'blob' })
  const datasets = createDatasetStore({ redis, prefix: tuning.redisPrefix })
  const uploads = createUploads({ redis, prefix: tuning.redisPrefix })
  const views = createOpsViews({ redis, prefix: tuning.redisPrefix })
  const activity = createActivity({ redis, prefix: tuning.redisPrefix, log: log.child('activity') })
  const metrics = createMetrics({ counters, views, activity })
  const signer = createUnitSigner(init.identity)
  const networks = createClientNetworkRules({
    trustedProxies: tuning.trustedProxies,
    exemptNetworks: tuning.placementExemptNetworks,
  })
  const signup =
    init.natsAccountSeed === undefined
      ? undefined
      : createSignupService({
          redis,
          prefix: tuning.redisPrefix,
          issuer: createVolunteerIssuer({
            accountSeed: init.natsAccountSeed,
            subjectPrefix: tuning.subjectPrefix,
            ttlMs: tuning.volunteerCredentialTtlMs,
          }),
          tuning,
          networks,
          counters,
          log: log.child('signup'),
          ...(tuning.vouchSignups
            ? { onSignedUp: async (id: string) => void (await store.vouch([id])) }
            : {}),
        })
  const volunteers = volunteersRouter({ signup, networks })
  // After sign-up's routes: GET /v1/volunteers/challenge is matched before /v1/volunteers/:id.
  const standing = standingRouter({ volunteers: createVolunteerStore({ redis, prefix: tuning.redisPrefix }) })
  let nats: NatsConnection | undefined
  let server: Server | undefined
  let url = ''
  let routes: RouteInfo[] = []
  let parts: { stop(): Promise<void> }[] = []
  let backtracker: Backtracker | undefined

  return {
    counters,
    get eventStreams() {
      return eventStreams.size
    },
    store,
    modules,
    datasets,
    uploads,
    get routes() {
      return routes
    },
    get url() {
      return url
    },
    async backtrack(worker, reason) {
      if (backtracker === undefined) throw new Error('the coordinator is not started')
      await backtracker.backtrack(worker, reason)
    },
    async start() {
      await redis.connect()
      await bullConnection.connect()
      nats = await connect({
        servers: natsServers(init.natsUrl),
        name: 'cohort-coordinator',
        maxReconnectAttempts: -1,
        reconnectTimeWait: 500,
        ...(init.natsUser === undefined ? {} : { user: init.natsUser, pass: init.natsPass ?? '' }),
        ...(init.natsCredentials === undefined
          ? {}
          : {
              authenticator: jwtAuthenticator(
                init.natsCredentials.jwt,
                new TextEncoder().encode(init.natsCredentials.seed),
              ),
            }),
      }).catch((err: unknown) => {
        if (!(err instanceof AuthorizationError)) throw err
        throw new ConfigError(
          `NATS refused this coordinator's login (${err.message}); give it the coordinators' ` +
            'credentials: NATS_CREDS (a .creds file), or NATS_USER / NATS_PASS',
          { cause: err },
        )
      })
      const nc = nats
      await checkCoordinatorRole(nc, subjects.workRequest)
      // Earned trust: the deployment's parameters, read by the scripts, and the operator's own hosts.
      await store.setTrustParams(trustParamsOf(tuning))
      await store.vouch(tuning.vouchedWorkers)
      const common = { nats: nc, subjects, tuning, counters }
      const speeds = createSpeedStore({ redis, prefix: tuning.redisPrefix, log: log.child('speeds') })
      const planner = createPlanner({ sources: { blobs, datasets }, speeds, tuning })
      const pipeline = createPipeline({
        connection: bullConnection,
        store,
        planner,
        tuning,
        counters,
        log: log.child('pipeline'),
        jobTypes,
        onPlanned: (replicas) => scheduler.announceWork(replicas),
      })
      const scheduler = createScheduler({
        ...common,
        store,
        signer,
        log: log.child('scheduler'),
        kinds: new Set(jobTypes.keys()),
        onWorkRequest: (worker, runtime) => activity.seen(worker, runtime),
        online: async () => {
          const byRuntime = await activity.online(Date.now())
          return byRuntime.daemon + byRuntime.browser + byRuntime.unknown
        },
        leaseLatency: metrics.leaseLatency,
      })
      const validator = createValidator({
        ...common,
        store,
        log: log.child('validator'),
        jobTypes,
        onReissue: (replicas) => scheduler.announceWork(replicas),
        onJobDone: (jobId) => pipeline.assimilate(jobId),
        onCaught: (worker, reason) => caught.backtrack(worker, reason),
        onValidated: (unitIds) => {
          activity.validated(unitIds.length)
          return speeds.recordValidated(unitIds)
        },
        onRejected: (reason) => metrics.rejected(reason),
        settleTime: metrics.settleTime,
      })
      const caught = createBacktracker({
        connection: bullConnection,
        store,
        tuning,
        counters,
        log: log.child('backtrack'),
        reevaluate: (unitId) => validator.reevaluate(unitId),
        onReissue: (replicas) => scheduler.announceWork(replicas),
      })
      backtracker = caught
      // Data requests: tied to a lease that needs the data, and within a per-identity budget.
      const needs = createLeaseNeeds({ store, jobTypes, modules, datasets, counters })
      const egress = createEgressBudget({
        redis,
        prefix: tuning.redisPrefix,
        bytesPerMinute: tuning.egressBytesPerMinute,
      })
      const moduleService = createModuleService({
        ...common,
        modules,
        datasets,
        needs,
        egress,
        log: log.child('modules'),
      })
      const chunkService = createChunkService({
        ...common,
        datasets,
        needs,
        egress,
        log: log.child('chunks'),
      })
      const claimService = createClaimService({
        ...common,
        store,
        signer,
        log: log.child('claims'),
        onGivenBack: (replicas) => scheduler.announceWork(replicas),
      })
      const uploadReaper = createUploadReaper({
        uploads,
        intervalMs: tuning.sweepIntervalMs,
        log: log.child('uploads'),
      })
      pipeline.start()
      caught.start()
      scheduler.start()
      validator.start()
      moduleService.start()
      chunkService.start()
      claimService.start()
      uploadReaper.start()
      activity.start()
      parts = [
        validator,
        claimService,
        scheduler,
        moduleService,
        chunkService,
        caught,
        pipeline,
        uploadReaper,
        activity,
      ]
      const app = createApp({
        store,
        eventStreams,
        modules,
        blobs,
        datasets,
        uploads,
        pipeline,
        planner,
        tuning,
        counters,
        log: log.child('http'),
        jobTypes,
        natsUp: () => !nc.isClosed(),
        routers: [volunteers, standing],
        extra: extraHttp,
        metrics,
        views,
        activity,
      })
      routes = app.routes()
      const srv = app.listen(init.port ?? 8080, init.host ?? '127.0.0.1')
      server = srv
      await new Promise<void>((resolve, reject) => {
        srv.once('listening', resolve)
        srv.once('error', reject)
      })
      const addr = srv.address() as AddressInfo
      url = `http://${addr.address.includes(':') ? `[${addr.address}]` : addr.address}:${addr.port}`
      // Pick up anything a previous coordinator left unfinished.
      await pipeline.sweep()
      await caught.sweep()
      log.info('coordinator started', { url, keyId: init.identity.keyId })
    },
    async stop() {
      const ms = tuning.stopTimeoutMs
      const srv = server
      server = undefined
      // Event streams never end by themselves soon: end them so the server can close.
      await eventStreams.stop(ms)
      if (srv !== undefined) {
        const closed = new Promise<void>((resolve) => srv.close(() => resolve()))
        srv.closeIdleConnections()
        await withTimeout(closed, ms, 'HTTP server close').catch(() => srv.closeAllConnections())
      }
      for (const part of parts) {
        await withTimeout(part.stop(), ms, 'coordinator part stop').catch((err: unknown) =>
          log.warn('stop timed out', errorFields(err)),
        )
      }
      parts = []
      if (nats !== undefined && !nats.isClosed()) {
        await withTimeout(nats.drain(), ms, 'NATS drain').catch(() => nats?.close())
      }
      await Promise.allSettled([redis.quit(), bullConnection.quit()])
      log.info('coordinator stopped')
    },
  }
}
