// Serving dataset chunks and manifests to workers over NATS (`<prefix>.v1.chunk.get`): the source of
// last resort, for content no peer has. A worker signs the request and names a SHA-256, the content
// (root) it belongs to and the replica it holds whose unit reads that content; it hashes what it gets
// before it keeps or serves it. The request is served once (its nonce), only to the signer's own
// inbox, only for a live lease that needs the chunk, and within the signer's egress budget. The
// counters measure the coordinator's content egress.
import {
  checkWorkerSigned,
  parseChunkGet,
  parseEnvelope,
  ProtocolError,
  type ChunkReply,
} from '../../shared/index.js'
import { chargeOrRefuse, type EgressBudget } from '../egress-budget.js'
import { requestService, type RequestService, type ServiceComponents } from '../nats-service.js'
import type { DatasetStore } from './dataset-store.js'
import type { LeaseNeeds } from './lease-needs.js'

export interface ChunkServiceInit extends ServiceComponents {
  datasets: DatasetStore
  /** Which leases need which data, and replays. */
  needs: LeaseNeeds
  egress: EgressBudget
}

export type ChunkService = RequestService

export function createChunkService(init: ChunkServiceInit): ChunkService {
  const { counters, needs, egress } = init
  return requestService({
    ...init,
    subject: init.subjects.chunkGet,
    maxBytes: 4096,
    async handler(value, ctx): Promise<ChunkReply> {
      const env = parseEnvelope(value, 'chunk.get', 1024)
      const req = parseChunkGet(await ctx.open(env))
      const now = Date.now()
      checkWorkerSigned(req, env.signer, now)
      await needs.once(req.worker, req.nonce)
      await needs.chunk(req.worker, req.replicaId, req.root, req.hash, now)
      const bytes = await init.datasets.get(req.hash)
      if (bytes === undefined) throw new ProtocolError(`no chunk or manifest with hash ${req.hash}`)
      // A chunk or a manifest is small (at most 256 KiB): charged once its size is known.
      await chargeOrRefuse(egress, req.worker, bytes.length, now)
      counters.chunksServed++
      counters.chunkBytesServed += bytes.length
      return { type: 'chunk', v: 1, hash: req.hash, bytes }
    },
  })
}
