// Datasets: POST /v1/datasets streams any bytes (application/octet-stream, at most
// `maxDatasetBytes`) into content-addressed chunks and answers the content's root; GET
// /v1/datasets/:root says what it holds and GET /v1/datasets/:root/data streams the bytes back.
// Workers fetch the chunks from each other, and from coordinators over NATS (`chunk.get`).
import { Router } from '@koa/router'
import type { Context } from 'koa'
import { Readable } from 'node:stream'
import { decodeManifest, DIGEST_HEX, ExpiredError } from '../../shared/index.js'
import type { DatasetInfo, DatasetStore } from '../content/dataset-store.js'
import type { CoordinatorTuning } from '../options.js'
import { rawBodyStream } from './body.js'
import { HttpError } from './http-error.js'

export interface DatasetsRoutesInit {
  datasets: DatasetStore
  tuning: CoordinatorTuning
  authenticate: (ctx: Context) => string
}

function view(info: DatasetInfo) {
  const self = `/v1/datasets/${info.root}`
  return {
    root: info.root,
    size: info.size,
    chunks: info.chunks,
    chunkSize: info.chunkSize,
    uploadedAt: info.uploadedAt,
    links: { self, data: `${self}/data` },
  }
}

export function datasetsRouter(init: DatasetsRoutesInit): Router {
  const { datasets, tuning } = init
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

  router.post('/', async (ctx) => {
    const owner = init.authenticate(ctx)
    const body = rawBodyStream(ctx, 'application/octet-stream', tuning.maxDatasetBytes)
    let stored
    try {
      stored = await datasets.put(body, owner)
    } catch (err) {
      if (err instanceof ExpiredError) throw new HttpError(408, 'upload-too-slow', err.message)
      throw err
    }
    const v = view(stored.info)
    ctx.status = stored.created ? 201 : 200
    ctx.set('Location', v.links.self)
    ctx.body = v
  })

  router.get('/:root', async (ctx) => {
    const root = checkRoot(ctx.params['root'])
    const info = await datasets.info(root)
    if (info === undefined) throw notFound(root)
    ctx.body = view(info)
  })

  router.get('/:root/data', async (ctx) => {
    const root = checkRoot(ctx.params['root'])
    const encoded = await datasets.manifest(root)
    if (encoded === undefined) throw notFound(root)
    const manifest = decodeManifest(encoded)
    ctx.type = 'application/octet-stream'
    ctx.length = manifest.size
    ctx.set('Cache-Control', 'public, max-age=31536000, immutable')
    ctx.body = Readable.from(datasets.read(manifest))
  })

  return router
}
