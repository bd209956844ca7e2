// Serving dataset chunks and manifests to workers over NATS (`<prefix>.v1.chunk.get`): the source of
// last resort, for content no peer has. A worker signs the request and names a SHA-256; it hashes
// what it gets before it keeps or serves it. The counters measure the coordinator's content egress.
import {
  checkWorkerSigned,
  open,
  parseChunkGet,
  parseEnvelope,
  ProtocolError,
  type ChunkReply,
} from '../../shared/index.js'
import { requestService, type RequestService, type ServiceComponents } from '../nats-service.js'
import type { DatasetStore } from './dataset-store.js'

export interface ChunkServiceInit extends ServiceComponents {
  datasets: DatasetStore
}

export type ChunkService = RequestService

export function createChunkService(init: ChunkServiceInit): ChunkService {
  const { counters } = init
  const handler = async (value: unknown): Promise<ChunkReply> => {
    const env = parseEnvelope(value, 'chunk.get', 1024)
    const req = parseChunkGet(await open(env))
    checkWorkerSigned(req, env.signer, Date.now())
    const bytes = await init.datasets.get(req.hash)
    if (bytes === undefined) throw new ProtocolError(`no chunk or manifest with hash ${req.hash}`)
    counters.chunksServed++
    counters.chunkBytesServed += bytes.length
    return { type: 'chunk', v: 1, hash: req.hash, bytes }
  }
  return requestService({ ...init, subject: init.subjects.chunkGet, handler, maxBytes: 4096 })
}
