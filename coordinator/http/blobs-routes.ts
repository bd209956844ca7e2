// Submitters' input blobs: POST /v1/blobs stores any bytes (application/octet-stream, at most
// `maxBlobBytes`) under their SHA-256; GET /v1/blobs/:hash returns them. A `wasm` job names a blob
// in `params.input.blob` and the coordinator splits it into records when it plans the job.
import { Router } from '@koa/router'
import { createHash } from 'node:crypto'
import type { Context } from 'koa'
import { DIGEST_HEX } from '../../shared/index.js'
import type { ContentStore } from '../modules/content-store.js'
import type { CoordinatorTuning } from '../options.js'
import { readRawBody } from './body.js'
import { HttpError } from './http-error.js'

export interface BlobsRoutesInit {
  blobs: ContentStore
  tuning: CoordinatorTuning
  authenticate: (ctx: Context) => string
}

export function blobsRouter(init: BlobsRoutesInit): Router {
  const { blobs, tuning } = init
  const router = new Router({ prefix: '/v1/blobs' })

  router.post('/', async (ctx) => {
    const owner = init.authenticate(ctx)
    const bytes = await readRawBody(ctx, 'application/octet-stream', tuning.maxBlobBytes)
    const hash = createHash('sha256').update(bytes).digest('hex')
    const created = await blobs.put(hash, bytes, {
      size: String(bytes.length),
      owner,
      uploadedAt: new Date().toISOString(),
    })
    ctx.status = created ? 201 : 200
    ctx.set('Location', `/v1/blobs/${hash}`)
    ctx.body = { hash, size: bytes.length, links: { self: `/v1/blobs/${hash}` } }
  })

  router.get('/:hash', async (ctx) => {
    const hash = ctx.params['hash']
    if (hash === undefined || !DIGEST_HEX.test(hash))
      throw new HttpError(404, 'blob-not-found', 'blobs are named by their SHA-256 in lowercase hex')
    const bytes = await blobs.get(hash)
    if (bytes === undefined) throw new HttpError(404, 'blob-not-found', `no blob with hash ${hash}`)
    ctx.type = 'application/octet-stream'
    ctx.set('Cache-Control', 'public, max-age=31536000, immutable')
    ctx.body = Buffer.from(bytes)
  })

  return router
}
