// The one place where Cohort reads its environment. Everything else receives options.
import { ConfigError, type LogLevel } from '../shared/index.js'

export interface EnvConfig {
  redisUrl: string | undefined
  natsUrl: string | undefined
  natsUser: string | undefined
  natsPass: string | undefined
  /** A NATS `.creds` file (user JWT + nkey seed) coordinators log in with (NATS_CREDS). */
  natsCreds: string | undefined
  /** The NATS account seed file coordinators issue volunteers' credentials with (COHORT_NATS_ACCOUNT_SEED_FILE). */
  natsAccountSeedFile: string | undefined
  /** A coordinator's HTTP API a worker signs up with (COHORT_COORDINATOR_URL). */
  coordinatorUrl: string | undefined
  /** The NATS WebSocket listener browsers connect to (the coordinator then serves /contribute). */
  natsWsUrl: string | undefined
  /** Coordinator HTTP API, for the CLI's client commands. Default http://127.0.0.1:8080. */
  apiUrl: string
  /** The key the CLI sends as `Authorization: Bearer <key>` (COHORT_API_KEY). */
  apiKey: string | undefined
  /** The coordinator's API keys file (COHORT_API_KEYS_FILE); see docs/deployment.md. */
  apiKeysFile: string | undefined
  /** Coordinator public keys (base64url) a worker trusts, comma-separated in COHORT_TRUST. */
  trust: string[]
  logLevel: LogLevel
  /** Whether COHORT_LOG_LEVEL was set (it then wins over a config file's `logLevel`). */
  logLevelSet: boolean
  dataDir: string
  /** The coordinator's config file (COHORT_COORDINATOR_CONFIG). */
  coordinatorConfig: string | undefined
  /** The worker's policy file (COHORT_WORKER_CONFIG); default ~/.cohort/worker.json when present. */
  workerConfig: string | undefined
  /** Where the worker keeps checkpoints and its status file (COHORT_WORKER_STATE_DIR). */
  workerStateDir: string | undefined
  /** Policy settings from the environment: COHORT_WORKER_RUN (always|idle), COHORT_WORKER_DUTY_CYCLE. */
  workerRun: string | undefined
  workerDutyCycle: string | undefined
  /** The worker's owner key file (COHORT_OWNER_KEY_FILE), linking the machines of one volunteer. */
  ownerKeyFile: string | undefined
}

const LEVELS: ReadonlySet<string> = new Set(['debug', 'info', 'warn', 'error'])

export function loadEnvConfig(env: Record<string, string | undefined> = process.env): EnvConfig {
  const get = (k: string): string | undefined => {
    const v = env[k]?.trim()
    return v === undefined || v === '' ? undefined : v
  }
  const logLevel = get('COHORT_LOG_LEVEL') ?? 'info'
  if (!LEVELS.has(logLevel))
    throw new ConfigError(`COHORT_LOG_LEVEL must be one of debug, info, warn, error; got "${logLevel}"`)
  return {
    redisUrl: get('REDIS_URL'),
    natsUrl: get('NATS_URL'),
    natsUser: get('NATS_USER'),
    natsPass: get('NATS_PASS'),
    natsCreds: get('NATS_CREDS'),
    natsAccountSeedFile: get('COHORT_NATS_ACCOUNT_SEED_FILE'),
    coordinatorUrl: get('COHORT_COORDINATOR_URL'),
    natsWsUrl: get('NATS_WS_URL'),
    apiUrl: get('COHORT_URL') ?? 'http://127.0.0.1:8080',
    apiKey: get('COHORT_API_KEY'),
    apiKeysFile: get('COHORT_API_KEYS_FILE'),
    trust: (get('COHORT_TRUST') ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
    logLevel: logLevel as LogLevel,
    logLevelSet: get('COHORT_LOG_LEVEL') !== undefined,
    coordinatorConfig: get('COHORT_COORDINATOR_CONFIG'),
    dataDir: get('COHORT_DATA_DIR') ?? '.cohort',
    workerConfig: get('COHORT_WORKER_CONFIG'),
    workerStateDir: get('COHORT_WORKER_STATE_DIR'),
    workerRun: get('COHORT_WORKER_RUN'),
    workerDutyCycle: get('COHORT_WORKER_DUTY_CYCLE'),
    ownerKeyFile: get('COHORT_OWNER_KEY_FILE'),
  }
}

/** Parse a positive integer CLI flag, naming the flag when it is wrong. */
export function intFlag(
  name: string,
  value: string | undefined,
  min: number,
  max: number,
): number | undefined {
  if (value === undefined) return undefined
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new ConfigError(`--${name} must be an integer from ${min} to ${max}, got "${value}"`)
  }
  return n
}
