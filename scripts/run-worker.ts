// `cohort worker`: the volunteer daemon as a process (identity file, NATS session, thread pool).
import { connect } from '@nats-io/transport-node'
import type { NatsConnection } from '@nats-io/nats-core'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { builtinJobTypes } from '../jobs/index.js'
import { ConfigError, errorFields, type Logger } from '../shared/index.js'
import {
  createPoolRunner,
  createWorkerDaemon,
  loadOrCreateIdentity,
  type WorkerDaemon,
} from '../worker/index.js'
import { parseTrusted } from './coordinator-key.js'

export interface RunWorkerOptions {
  natsUrl: string | undefined
  natsUser?: string | undefined
  natsPass?: string | undefined
  keyFile: string
  trust: string[]
  threads?: number | undefined
  bufferUnits?: number | undefined
  subjectPrefix?: string
  log: Logger
}

export function defaultWorkerKeyFile(): string {
  return join(homedir(), '.cohort', 'worker-key.json')
}

export async function startWorker(
  o: RunWorkerOptions,
): Promise<{ daemon: WorkerDaemon; stop(): Promise<void> }> {
  if (o.natsUrl === undefined) throw new ConfigError('no NATS: pass --nats-url or set NATS_URL')
  const trusted = await parseTrusted(o.trust)
  const { identity, created } = await loadOrCreateIdentity(o.keyFile)
  if (created) o.log.info('created a new worker identity', { keyFile: o.keyFile, id: identity.id })
  const nats: NatsConnection = await connect({
    servers: o.natsUrl,
    name: `cohort-worker-${identity.id.slice(0, 8)}`,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    ...(o.natsUser === undefined ? {} : { user: o.natsUser, pass: o.natsPass ?? '' }),
  })
  void (async () => {
    for await (const s of nats.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnect') o.log.info(`nats ${s.type}`)
    }
  })().catch((err: unknown) => o.log.debug('nats status stream ended', errorFields(err)))
  const daemon = createWorkerDaemon({
    nats,
    identity,
    trusted,
    runner: createPoolRunner(o.threads === undefined ? {} : { threads: o.threads }),
    jobTypes: builtinJobTypes.values(),
    log: o.log,
    ...(o.subjectPrefix === undefined ? {} : { subjectPrefix: o.subjectPrefix }),
    ...(o.bufferUnits === undefined ? {} : { bufferUnits: o.bufferUnits }),
  })
  daemon.start()
  return {
    daemon,
    async stop() {
      await daemon.stop()
      await nats.drain().catch(() => nats.close())
    },
  }
}
