// Serving module bytes to workers over NATS (`<prefix>.v1.module.get`): a worker names the hash a
// signed unit gave it, signs the request, and gets the bytes, which it checks against the hash.
import {
  checkWorkerSigned,
  DIGEST_HEX,
  open,
  parseEnvelope,
  parseModuleGet,
  ProtocolError,
  type ModuleReply,
} from '../../shared/index.js'
import { requestService, type RequestService, type ServiceComponents } from '../nats-service.js'
import type { ContentStore } from './content-store.js'

export interface ModuleServiceInit extends ServiceComponents {
  modules: ContentStore
}

export type ModuleService = RequestService

export function createModuleService(init: ModuleServiceInit): ModuleService {
  const handler = async (value: unknown): Promise<ModuleReply> => {
    const env = parseEnvelope(value, 'module.get', 1024)
    const req = parseModuleGet(await open(env))
    checkWorkerSigned(req, env.signer, Date.now())
    if (!DIGEST_HEX.test(req.hash)) throw new ProtocolError('hash must be SHA-256 hex')
    const bytes = await init.modules.get(req.hash)
    if (bytes === undefined) throw new ProtocolError(`no module with hash ${req.hash}`)
    return { type: 'module', v: 1, hash: req.hash, bytes }
  }
  return requestService({ ...init, subject: init.subjects.moduleGet, handler, maxBytes: 4096 })
}
