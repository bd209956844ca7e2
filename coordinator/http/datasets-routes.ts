// Datasets: POST /v1/datasets streams any bytes (application/octet-stream, at most
// `maxDatasetBytes`) into content-addressed chunks and answers the content's root; GET
// /v1/datasets/:root says what it holds and GET /v1/datasets/:root/data streams the bytes back.
// Workers fetch the chunks from each other, and from coordinators over NATS (`chunk.get`). Only an
// owner that uploaded the dataset (or an admin) sees it; datasets count against the owner's stored
// bytes and expire.
import { Router } from '@koa/router'
import type { Context } from 'koa'
import { Readable } from 'node:stream'
import type { Uploads } from '../content/uploads.js'
import { callerOf, type Caller } from './auth.js'
import { bytesLeft, holdUpload, storedBytesExceeded } from './upload-quota.js'
import { decodeManifest, DIGEST_HEX, ExpiredError } from '../../shared/index.js'
import type { DatasetInfo, DatasetStore } from '../content/dataset-store.js'
import type { CoordinatorTuning } from '../options.js'
import { rawBodyStream } from './body.js'
import { HttpError } from './http-error.js'

export interface DatasetsRoutesInit {
  datasets: DatasetStore
  tuning: CoordinatorTuning
  uploads: Uploads
}

function view(info: DatasetInfo, uploadedAt: string) {
  const self = `/v1/datasets/${info.root}`
  return {
    root: info.root,
    size: info.size,
    chunks: info.chunks,
    chunkSize: info.chunkSize,
    uploadedAt,
    links: { self, data: `${self}/data` },
  }
}

export function datasetsRouter(init: DatasetsRoutesInit): Router {
  const { datasets, tuning, uploads } = init
  const router = new Router({ prefix: '/v1/datasets' })
  const checkRoot = (root: string | undefined): string => {
    if (root === undefined || !DIGEST_HEX.test(root))
      throw new HttpError(
        404,
        'dataset-not-found',
        'datasets are named by their root, SHA-256 in lowercase hex',
      )
    return root
  }
  const notFound = (root: string): HttpError =>
    new HttpError(404, 'dataset-not-found', `no dataset with root ${root}`)

  /** Stop an upload as soon as it passes what the caller may still store. */
  async function* withinQuota(body: AsyncIterable<Buffer>, caller: Caller, left: number) {
    let size = 0
    for await (const chunk of body) {
      size += chunk.length
      if (size > left) throw storedBytesExceeded(tuning, caller, size, (caller.quota.storedBytes ?? 0) - left)
      yield chunk
    }
  }

  /** The dataset, for an owner that uploaded it or an admin; 404 for anyone else. */
  const visible = async (ctx: Context, root: string): Promise<{ info: DatasetInfo; uploadedAt: string }> => {
    const caller = callerOf(ctx)
    const own = await uploads.held('dataset', root, caller.owner)
    const info = own !== undefined || caller.admin ? await datasets.info(root) : undefined
    if (info === undefined) throw notFound(root)
    return { info, uploadedAt: own?.uploadedAt.toISOString() ?? info.uploadedAt }
  }

  router.post('/', async (ctx) => {
    const caller = callerOf(ctx)
    const left = await bytesLeft(uploads, caller)
    const declared = Number(ctx.request.headers['content-length'] ?? NaN)
    if (Number.isFinite(declared) && declared > left && declared <= tuning.maxDatasetBytes)
      throw storedBytesExceeded(tuning, caller, declared, (caller.quota.storedBytes ?? 0) - left)
    let body = rawBodyStream(ctx, 'application/octet-stream', tuning.maxDatasetBytes)
    if (left < tuning.maxDatasetBytes) body = withinQuota(body, caller, left)
    let stored
    try {
      stored = await datasets.put(body, caller.owner)
    } catch (err) {
      if (err instanceof ExpiredError) throw new HttpError(408, 'upload-too-slow', err.message)
      throw err
    }
    const { root, size } = stored.info
    let hold
    try {
      hold = await holdUpload(uploads, tuning, caller, 'dataset', root, size)
    } catch (err) {
      // Another upload of this owner took the room first: content no one holds is deleted.
      if (stored.created) await uploads.dropIfUnheld('dataset', root)
      throw err
    }
    const v = view(
      stored.info,
      hold === 'new' ? new Date().toISOString() : (await visible(ctx, root)).uploadedAt,
    )
    ctx.status = hold === 'new' ? 201 : 200
    ctx.set('Location', v.links.self)
    ctx.body = v
  })

  router.get('/:root', async (ctx) => {
    const root = checkRoot(ctx.params['root'])
    const { info, uploadedAt } = await visible(ctx, root)
    ctx.body = view(info, uploadedAt)
  })

  router.get('/:root/data', async (ctx) => {
    const root = checkRoot(ctx.params['root'])
    await visible(ctx, root)
    const encoded = await datasets.manifest(root)
    if (encoded === undefined) throw notFound(root)
    const manifest = decodeManifest(encoded)
    ctx.type = 'application/octet-stream'
    ctx.length = manifest.size
    ctx.set('Cache-Control', 'private, max-age=31536000, immutable')
    ctx.body = Readable.from(datasets.read(manifest))
  })

  return router
}
