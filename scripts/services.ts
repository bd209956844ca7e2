// Redis and NATS for `cohort up` and for tests: private servers on free ports, or external ones by URL.
import { join } from 'node:path'
import { ensureBinaries, type ServerBinary } from './install-packages.js'
import { startNatsServer, type NatsServer, type NatsUserCredentials } from './nats-server.js'
import { startRedisServer, type RedisServer } from './redis-server.js'

export interface ServicesOptions {
  /** Private servers keep their data in `<dataDir>/redis` and `<dataDir>/nats`. */
  dataDir: string
  /** Use this Redis instead of starting one. */
  redisUrl?: string
  /** Use this NATS instead of starting one. */
  natsUrl?: string
  /** With an external NATS: its WebSocket URL, if it has one. */
  natsWsUrl?: string
  /** Receives one line per thing done (servers started, packages installed, unexpected exits). */
  log?: (line: string) => void
  /** Open a WebSocket listener on the private nats-server (default true). */
  websocket?: boolean
  /** How long each server may take to become ready, in ms (default 15000). */
  timeoutMs?: number
}

export interface Services {
  redisUrl: string
  natsUrl: string
  natsWsUrl: string | undefined
  /**
   * A user JWT with full permissions on the private nats-server, for coordinators. Nobody connects
   * without a JWT of the deployment's account: volunteers get theirs by signing up. Undefined for an
   * external NATS (its operator gives coordinators NATS_CREDS or NATS_USER/NATS_PASS).
   */
  natsCoordinator: NatsUserCredentials | undefined
  /** The private server's Cohort account seed, which coordinators issue volunteers' credentials with. */
  natsAccountSeed: string | undefined
  /** The same two, as files (mode 0600) for child processes: a `.creds` file and the account seed. */
  natsFiles: { creds: string; accountSeed: string } | undefined
  /** Monitoring URL of the private nats-server (/healthz, /varz, /jsz). */
  natsMonitorUrl?: string
  /** Pids of the private servers, the last ones started (they change on restart). */
  readonly pids: { redis: number | undefined; nats: number | undefined }
  /** Stops the private servers (SIGTERM, then SIGKILL after a timeout) and waits for them to exit. */
  stop: () => Promise<void>
  /** Fault injection, private Redis only: send `signal` (default SIGKILL) and wait for it to exit. */
  killRedis?: (signal?: NodeJS.Signals) => Promise<void>
  /** Private Redis only: stop it if it runs and start it again on the same port with the same data. */
  restartRedis?: () => Promise<void>
  /** Fault injection, private NATS only: send `signal` (default SIGKILL) and wait for it to exit. */
  killNats?: (signal?: NodeJS.Signals) => Promise<void>
  /** Private NATS only: stop it if it runs and start it again with the same ports and store. */
  restartNats?: () => Promise<void>
}

/** The options that come from the environment: REDIS_URL, NATS_URL and NATS_WS_URL select external servers. */
export function servicesOptionsFromEnv(
  env: Record<string, string | undefined>,
): Pick<ServicesOptions, 'redisUrl' | 'natsUrl' | 'natsWsUrl'> {
  const pick = (name: string) => {
    const value = env[name]?.trim()
    return value === undefined || value === '' ? undefined : value
  }
  const options: Pick<ServicesOptions, 'redisUrl' | 'natsUrl' | 'natsWsUrl'> = {}
  const redisUrl = pick('REDIS_URL')
  const natsUrl = pick('NATS_URL')
  const natsWsUrl = pick('NATS_WS_URL')
  if (redisUrl !== undefined) options.redisUrl = redisUrl
  if (natsUrl !== undefined) options.natsUrl = natsUrl
  if (natsWsUrl !== undefined) options.natsWsUrl = natsWsUrl
  return options
}

export async function startServices(opts: ServicesOptions): Promise<Services> {
  const log = opts.log ?? (() => {})
  const needed: ServerBinary[] = []
  if (opts.redisUrl === undefined) needed.push('redis-server')
  if (opts.natsUrl === undefined) needed.push('nats-server')
  const binaries = await ensureBinaries(needed, log)

  let redis: RedisServer | undefined
  let nats: NatsServer | undefined
  try {
    if (opts.redisUrl === undefined) {
      redis = await startRedisServer({
        binary: binaries['redis-server'],
        dir: join(opts.dataDir, 'redis'),
        log,
        timeoutMs: opts.timeoutMs,
      })
    } else log(`using external Redis at ${opts.redisUrl}`)
    if (opts.natsUrl === undefined) {
      nats = await startNatsServer({
        binary: binaries['nats-server'],
        dir: join(opts.dataDir, 'nats'),
        websocket: opts.websocket ?? true,
        log,
        timeoutMs: opts.timeoutMs,
      })
    } else log(`using external NATS at ${opts.natsUrl}`)
  } catch (err) {
    await redis?.stop()
    throw err
  }

  const services: Services = {
    redisUrl: redis?.url ?? opts.redisUrl ?? '',
    natsUrl: nats?.url ?? opts.natsUrl ?? '',
    natsWsUrl: nats === undefined ? opts.natsWsUrl : nats.wsUrl,
    natsCoordinator: nats?.coordinator,
    natsAccountSeed: nats?.accountSeed,
    natsFiles: nats?.files,
    pids: {
      get redis() {
        return redis?.pid
      },
      get nats() {
        return nats?.pid
      },
    },
    async stop() {
      await Promise.all([redis?.stop(), nats?.stop()])
    },
  }
  if (redis !== undefined) {
    const r = redis
    services.killRedis = (signal) => r.kill(signal)
    services.restartRedis = () => r.restart()
  }
  if (nats !== undefined) {
    const n = nats
    services.natsMonitorUrl = n.monitorUrl
    services.killNats = (signal) => n.kill(signal)
    services.restartNats = () => n.restart()
  }
  return services
}
export type { NatsUserCredentials } from './nats-server.js'
