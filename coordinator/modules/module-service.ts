// Serving modules to workers over NATS (`<prefix>.v1.module.get`): a worker names the hash a signed
// unit gave it, the replica of that unit it holds, and signs the request. It gets the bytes, which it
// checks against the hash; or, when it exchanges content with peers (`chunked`) and the module is
// larger than one chunk, the reference `{root, size}` of the module's chunked form, which it fetches
// from peers first. The request is served once (its nonce), only to the signer's own inbox, only for
// a live lease whose unit uses the module, and within the signer's egress budget.
import {
  checkWorkerSigned,
  encode,
  parseEnvelope,
  parseModuleGet,
  ProtocolError,
  type ModuleReply,
} from '../../shared/index.js'
import type { DatasetStore } from '../content/dataset-store.js'
import type { LeaseNeeds } from '../content/lease-needs.js'
import { chargeOrRefuse, type EgressBudget } from '../egress-budget.js'
import { requestService, type RequestService, type ServiceComponents } from '../nats-service.js'
import type { ContentStore } from './content-store.js'
import { createModuleChunks } from './module-chunks.js'

export interface ModuleServiceInit extends ServiceComponents {
  modules: ContentStore
  /** Where modules' chunked forms are kept. */
  datasets: DatasetStore
  /** Which leases need which data, and replays. */
  needs: LeaseNeeds
  egress: EgressBudget
}

export type ModuleService = RequestService

export function createModuleService(init: ModuleServiceInit): ModuleService {
  const { counters, needs, egress } = init
  const chunks = createModuleChunks(init)

  return requestService({
    ...init,
    subject: init.subjects.moduleGet,
    maxBytes: 4096,
    async handler(value, ctx): Promise<ModuleReply> {
      const env = parseEnvelope(value, 'module.get', 1024)
      const req = parseModuleGet(await ctx.open(env))
      const now = Date.now()
      checkWorkerSigned(req, env.signer, now)
      await needs.once(req.worker, req.nonce)
      await needs.module(req.worker, req.replicaId, req.hash, now)
      if (req.chunked === true) {
        const ref = await chunks.ref(req.hash)
        if (ref !== undefined) {
          const reply: ModuleReply = { type: 'module', v: 1, hash: req.hash, ...ref }
          await chargeOrRefuse(egress, req.worker, encode(reply).length, now)
          return reply
        }
      }
      // Charged before the bytes are read: a spent budget costs the coordinators no module read.
      const size = Number((await init.modules.meta(req.hash))?.['size'])
      if (!(size > 0)) throw new ProtocolError(`no module with hash ${req.hash}`)
      await chargeOrRefuse(egress, req.worker, size, now)
      const bytes = await init.modules.get(req.hash)
      if (bytes === undefined) throw new ProtocolError(`no module with hash ${req.hash}`)
      counters.modulesServed++
      counters.moduleBytesServed += bytes.length
      return { type: 'module', v: 1, hash: req.hash, bytes }
    },
  })
}
