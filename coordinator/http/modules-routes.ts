// Submitters' WebAssembly modules: POST /v1/modules checks a module against Cohort's rules and
// stores it under its SHA-256 (a module larger than one chunk also as chunked content, which workers
// fetch from each other); GET /v1/modules/:hash returns the bytes, GET /v1/modules/:hash/info what
// was recorded at upload; both only to an owner that uploaded it (or an admin). A refused module is a
// 422 whose `rule` names the rule it broke. Modules count against the owner's stored bytes and expire.
import { Router } from '@koa/router'
import { createHash } from 'node:crypto'
import { ModuleRuleError, validateModule } from '../../jobs/index.js'
import { DIGEST_HEX } from '../../shared/index.js'
import type { DatasetStore } from '../content/dataset-store.js'
import type { Counters } from '../counters.js'
import type { ContentStore } from '../modules/content-store.js'
import { createModuleChunks } from '../modules/module-chunks.js'
import type { CoordinatorTuning } from '../options.js'
import { readRawBody } from './body.js'
import { HttpError } from './http-error.js'
import type { Uploads } from '../content/uploads.js'
import { callerOf } from './auth.js'
import { holdUpload } from './upload-quota.js'
import type { Context } from 'koa'

export interface ModulesRoutesInit {
  modules: ContentStore
  /** Where modules' chunked forms are kept. */
  datasets: DatasetStore
  tuning: CoordinatorTuning
  counters: Counters
  uploads: Uploads
}

export function modulesRouter(init: ModulesRoutesInit): Router {
  const { modules, tuning, uploads } = init
  const chunks = createModuleChunks({ ...init, pin: (root, hash) => uploads.pinChunkedModule(root, hash) })
  const router = new Router({ prefix: '/v1/modules' })
  const checkHash = (hash: string | undefined): string => {
    if (hash === undefined || !DIGEST_HEX.test(hash))
      throw new HttpError(404, 'module-not-found', 'modules are named by their SHA-256 in lowercase hex')
    return hash
  }
  /** The module's meta, for an owner that uploaded it or an admin; 404 for anyone else. */
  const visible = async (ctx: Context, hash: string): Promise<Record<string, string>> => {
    const caller = callerOf(ctx)
    const mine = caller.admin || (await uploads.held('module', hash, caller.owner)) !== undefined
    const meta = mine ? await modules.meta(hash) : undefined
    if (meta === undefined) throw new HttpError(404, 'module-not-found', `no module with hash ${hash}`)
    return meta
  }

  router.post('/', async (ctx) => {
    const caller = callerOf(ctx)
    const bytes = await readRawBody(ctx, 'application/wasm', tuning.maxModuleBytes)
    let info
    try {
      info = await validateModule(bytes, { maxBytes: tuning.maxModuleBytes, maxPages: tuning.maxModulePages })
    } catch (err) {
      if (err instanceof ModuleRuleError) {
        init.counters.modulesRefused++
        throw new HttpError(422, 'module-refused', `${err.rule}: ${err.message}`, { rule: err.rule })
      }
      throw err
    }
    const hash = createHash('sha256').update(bytes).digest('hex')
    const hold = await holdUpload(uploads, tuning, caller, 'module', hash, bytes.length)
    await modules.put(hash, bytes, {
      size: String(bytes.length),
      owner: caller.owner,
      uploadedAt: new Date().toISOString(),
      memoryPages: `${info.memory.min}..${info.memory.max}`,
      warnings: JSON.stringify(info.warnings),
    })
    await chunks.store(hash, bytes)
    ctx.status = hold === 'new' ? 201 : 200
    ctx.set('Location', `/v1/modules/${hash}`)
    ctx.body = {
      hash,
      size: bytes.length,
      memory: { minPages: info.memory.min, maxPages: info.memory.max },
      progress: info.progress,
      warnings: info.warnings,
      links: { self: `/v1/modules/${hash}` },
    }
  })

  router.get('/:hash', async (ctx) => {
    const hash = checkHash(ctx.params['hash'])
    await visible(ctx, hash)
    const bytes = await modules.get(hash)
    if (bytes === undefined) throw new HttpError(404, 'module-not-found', `no module with hash ${hash}`)
    ctx.type = 'application/wasm'
    ctx.set('Cache-Control', 'private, max-age=31536000, immutable')
    ctx.body = Buffer.from(bytes)
  })

  router.get('/:hash/info', async (ctx) => {
    const hash = checkHash(ctx.params['hash'])
    const meta = await visible(ctx, hash)
    // When the caller uploaded it: the time of its own upload, not of anyone else's.
    const own = await uploads.held('module', hash, callerOf(ctx).owner)
    ctx.body = {
      hash,
      size: Number(meta['size']),
      uploadedAt: own?.uploadedAt.toISOString() ?? meta['uploadedAt'],
      memoryPages: meta['memoryPages'],
      warnings: JSON.parse(meta['warnings'] ?? '[]') as unknown,
      // The root of the module's chunked form (modules larger than one chunk).
      ...(meta['root'] === undefined ? {} : { root: meta['root'] }),
    }
  })

  return router
}
