// Serving module bytes to workers over NATS (`<prefix>.v1.module.get`): a worker names the hash a
// signed unit gave it, signs the request, and gets the bytes, which it checks against the hash.
import type { NatsConnection } from '@nats-io/nats-core'
import {
  checkWorkerSigned,
  DIGEST_HEX,
  open,
  parseEnvelope,
  parseModuleGet,
  ProtocolError,
  type Logger,
  type ModuleReply,
  type Subjects,
} from '../../shared/index.js'
import type { Counters } from '../counters.js'
import { serve, type Service } from '../nats-service.js'
import type { CoordinatorTuning } from '../options.js'
import type { ContentStore } from './content-store.js'

export interface ModuleServiceInit {
  nats: NatsConnection
  modules: ContentStore
  subjects: Subjects
  tuning: CoordinatorTuning
  counters: Counters
  log: Logger
}

export interface ModuleService {
  start(): void
  stop(): Promise<void>
}

export function createModuleService(init: ModuleServiceInit): ModuleService {
  let service: Service | undefined
  const handler = async (value: unknown): Promise<ModuleReply> => {
    const env = parseEnvelope(value, 'module.get', 1024)
    const req = parseModuleGet(await open(env))
    checkWorkerSigned(req, env.signer, Date.now())
    if (!DIGEST_HEX.test(req.hash)) throw new ProtocolError('hash must be SHA-256 hex')
    const bytes = await init.modules.get(req.hash)
    if (bytes === undefined) throw new ProtocolError(`no module with hash ${req.hash}`)
    return { type: 'module', v: 1, hash: req.hash, bytes }
  }
  return {
    start() {
      service = serve({
        nats: init.nats,
        subject: init.subjects.moduleGet,
        handler,
        counters: init.counters,
        log: init.log,
        maxInflight: init.tuning.maxInflight,
        maxBytes: 4096,
      })
    },
    async stop() {
      await service?.stop(init.tuning.stopTimeoutMs)
      service = undefined
    },
  }
}
