// Serving modules to workers over NATS (`<prefix>.v1.module.get`): a worker names the hash a signed
// unit gave it and signs the request. It gets the bytes, which it checks against the hash; or, when it
// exchanges content with peers (`chunked`) and the module is larger than one chunk, the reference
// `{root, size}` of the module's chunked form, which it fetches from peers first.
import {
  checkWorkerSigned,
  DIGEST_HEX,
  open,
  parseEnvelope,
  parseModuleGet,
  ProtocolError,
  type ModuleReply,
} from '../../shared/index.js'
import type { DatasetStore } from '../content/dataset-store.js'
import { requestService, type RequestService, type ServiceComponents } from '../nats-service.js'
import type { ContentStore } from './content-store.js'
import { createModuleChunks } from './module-chunks.js'

export interface ModuleServiceInit extends ServiceComponents {
  modules: ContentStore
  /** Where modules' chunked forms are kept. */
  datasets: DatasetStore
}

export type ModuleService = RequestService

export function createModuleService(init: ModuleServiceInit): ModuleService {
  const { counters } = init
  const chunks = createModuleChunks(init)
  const handler = async (value: unknown): Promise<ModuleReply> => {
    const env = parseEnvelope(value, 'module.get', 1024)
    const req = parseModuleGet(await open(env))
    checkWorkerSigned(req, env.signer, Date.now())
    if (!DIGEST_HEX.test(req.hash)) throw new ProtocolError('hash must be SHA-256 hex')
    if (req.chunked === true) {
      const ref = await chunks.ref(req.hash)
      if (ref !== undefined) return { type: 'module', v: 1, hash: req.hash, ...ref }
    }
    const bytes = await init.modules.get(req.hash)
    if (bytes === undefined) throw new ProtocolError(`no module with hash ${req.hash}`)
    counters.modulesServed++
    counters.moduleBytesServed += bytes.length
    return { type: 'module', v: 1, hash: req.hash, bytes }
  }
  return requestService({ ...init, subject: init.subjects.moduleGet, handler, maxBytes: 4096 })
}
