// `cohort coordinator`: one coordinator process against Redis and NATS.
import { join } from 'node:path'
import { builtinJobTypes } from '../jobs/index.js'
import { createCoordinator, type Coordinator, type CoordinatorTuning } from '../coordinator/index.js'
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
}

export async function startCoordinator(
  o: RunCoordinatorOptions,
): Promise<{ coordinator: Coordinator; key: string }> {
  if (o.redisUrl === undefined)
    throw new ConfigError('no Redis: pass --redis-url or set REDIS_URL (or use `cohort up`)')
  if (o.natsUrl === undefined)
    throw new ConfigError('no NATS: pass --nats-url or set NATS_URL (or use `cohort up`)')
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
    ...(o.tuning === undefined ? {} : { tuning: o.tuning }),
    ...(o.natsWsUrl === undefined ? {} : { contribute: { natsWsUrl: o.natsWsUrl } }),
  })
  await coordinator.start()
  return { coordinator, key: identity.id }
}

export function defaultCoordinatorKeyFile(dataDir: string): string {
  return join(dataDir, 'coordinator-key.json')
}
