// `cohort coordinator`: one coordinator process against Redis and NATS.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { builtinJobTypes } from '../jobs/index.js'
import {
  createCoordinator,
  parseApiKeysFile,
  type ApiKeySpec,
  type Coordinator,
  type CoordinatorTuning,
} from '../coordinator/index.js'
import { ConfigError, type Logger } from '../shared/index.js'
import { loadOrCreateKey } from './coordinator-key.js'

export interface RunCoordinatorOptions {
  redisUrl: string | undefined
  natsUrl: string | undefined
  natsUser?: string | undefined
  natsPass?: string | undefined
  /** The NATS WebSocket listener browsers connect to; when set, the coordinator serves /contribute. */
  natsWsUrl?: string | undefined
  port: number
  host: string
  keyFile: string
  log: Logger
  tuning?: Partial<CoordinatorTuning>
  /** The API keys file (JSON, see docs/deployment.md); its keys replace `tuning.apiKeys`. */
  apiKeysFile?: string | undefined
}

/** Read and check an API keys file; errors name the file and the field. */
export async function loadApiKeysFile(path: string): Promise<ApiKeySpec[]> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new ConfigError(`cannot read the API keys file ${path}: ${(err as Error).message}`, { cause: err })
  }
  return parseApiKeysFile(text, path)
}

export async function startCoordinator(
  o: RunCoordinatorOptions,
): Promise<{ coordinator: Coordinator; key: string }> {
  if (o.redisUrl === undefined)
    throw new ConfigError('no Redis: pass --redis-url or set REDIS_URL (or use `cohort up`)')
  if (o.natsUrl === undefined)
    throw new ConfigError('no NATS: pass --nats-url or set NATS_URL (or use `cohort up`)')
  const tuning: Partial<CoordinatorTuning> = { ...o.tuning }
  if (o.apiKeysFile !== undefined) tuning.apiKeys = await loadApiKeysFile(o.apiKeysFile)
  const { identity } = await loadOrCreateKey(o.keyFile)
  const coordinator = createCoordinator({
    redisUrl: o.redisUrl,
    natsUrl: o.natsUrl,
    ...(o.natsUser === undefined ? {} : { natsUser: o.natsUser, natsPass: o.natsPass ?? '' }),
    identity,
    jobTypes: builtinJobTypes.values(),
    log: o.log,
    port: o.port,
    host: o.host,
    tuning,
    ...(o.natsWsUrl === undefined ? {} : { contribute: { natsWsUrl: o.natsWsUrl } }),
  })
  await coordinator.start()
  return { coordinator, key: identity.id }
}

export function defaultCoordinatorKeyFile(dataDir: string): string {
  return join(dataDir, 'coordinator-key.json')
}
