// Submitters' input blobs: POST /v1/blobs stores any bytes (application/octet-stream, at most
// `maxBlobBytes`) under their SHA-256; GET /v1/blobs/:hash returns them to an owner that uploaded
// them (or an admin). A `wasm` job names a blob in `params.input.blob` and the coordinator splits it
// into records when it plans the job. Blobs count against the owner's stored bytes and expire.
import { Router } from '@koa/router'
import { createHash } from 'node:crypto'
import { DIGEST_HEX } from '../../shared/index.js'
import type { Uploads } from '../content/uploads.js'
import type { ContentStore } from '../modules/content-store.js'
import type { CoordinatorTuning } from '../options.js'
import { callerOf } from './auth.js'
import { readRawBody } from './body.js'
import { HttpError } from './http-error.js'
import { holdUpload } from './upload-quota.js'

export interface BlobsRoutesInit {
  blobs: ContentStore
  tuning: CoordinatorTuning
  uploads: Uploads
}

export function blobsRouter(init: BlobsRoutesInit): Router {
  const { blobs, tuning, uploads } = init
  const router = new Router({ prefix: '/v1/blobs' })

  router.post('/', async (ctx) => {
    const caller = callerOf(ctx)
    const bytes = await readRawBody(ctx, 'application/octet-stream', tuning.maxBlobBytes)
    const hash = createHash('sha256').update(bytes).digest('hex')
    const hold = await holdUpload(uploads, tuning, caller, 'blob', hash, bytes.length)
    await blobs.put(hash, bytes, {
      size: String(bytes.length),
      owner: caller.owner,
      uploadedAt: new Date().toISOString(),
    })
    ctx.status = hold === 'new' ? 201 : 200
    ctx.set('Location', `/v1/blobs/${hash}`)
    ctx.body = { hash, size: bytes.length, links: { self: `/v1/blobs/${hash}` } }
  })

  router.get('/:hash', async (ctx) => {
    const caller = callerOf(ctx)
    const hash = ctx.params['hash']
    if (hash === undefined || !DIGEST_HEX.test(hash))
      throw new HttpError(404, 'blob-not-found', 'blobs are named by their SHA-256 in lowercase hex')
    const mine = caller.admin || (await uploads.held('blob', hash, caller.owner)) !== undefined
    const bytes = mine ? await blobs.get(hash) : undefined
    if (bytes === undefined) throw new HttpError(404, 'blob-not-found', `no blob with hash ${hash}`)
    ctx.type = 'application/octet-stream'
    ctx.set('Cache-Control', 'private, max-age=31536000, immutable')
    ctx.body = Buffer.from(bytes)
  })

  return router
}
