// Submitters' WebAssembly modules: POST /v1/modules checks a module against Cohort's rules and
// stores it under its SHA-256 (a module larger than one chunk also as chunked content, which workers
// fetch from each other); GET /v1/modules/:hash returns the bytes, GET /v1/modules/:hash/info what
// was recorded at upload. A refused module is a 422 whose `rule` names the rule it broke.
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
import type { Context } from 'koa'

export interface ModulesRoutesInit {
  modules: ContentStore
  /** Where modules' chunked forms are kept. */
  datasets: DatasetStore
  tuning: CoordinatorTuning
  counters: Counters
  authenticate: (ctx: Context) => string
}

export function modulesRouter(init: ModulesRoutesInit): Router {
  const { modules, tuning } = init
  const chunks = createModuleChunks(init)
  const router = new Router({ prefix: '/v1/modules' })
  const checkHash = (hash: string | undefined): string => {
    if (hash === undefined || !DIGEST_HEX.test(hash))
      throw new HttpError(404, 'module-not-found', 'modules are named by their SHA-256 in lowercase hex')
    return hash
  }

  router.post('/', async (ctx) => {
    const owner = init.authenticate(ctx)
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
    const created = await modules.put(hash, bytes, {
      size: String(bytes.length),
      owner,
      uploadedAt: new Date().toISOString(),
      memoryPages: `${info.memory.min}..${info.memory.max}`,
      warnings: JSON.stringify(info.warnings),
    })
    await chunks.store(hash, bytes)
    ctx.status = created ? 201 : 200
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
    const bytes = await modules.get(hash)
    if (bytes === undefined) throw new HttpError(404, 'module-not-found', `no module with hash ${hash}`)
    ctx.type = 'application/wasm'
    ctx.set('Cache-Control', 'public, max-age=31536000, immutable')
    ctx.body = Buffer.from(bytes)
  })

  router.get('/:hash/info', async (ctx) => {
    const hash = checkHash(ctx.params['hash'])
    const meta = await modules.meta(hash)
    if (meta === undefined) throw new HttpError(404, 'module-not-found', `no module with hash ${hash}`)
    ctx.body = {
      hash,
      size: Number(meta['size']),
      uploadedAt: meta['uploadedAt'],
      memoryPages: meta['memoryPages'],
      warnings: JSON.parse(meta['warnings'] ?? '[]') as unknown,
      // The root of the module's chunked form (modules larger than one chunk).
      ...(meta['root'] === undefined ? {} : { root: meta['root'] }),
    }
  })

  return router
}
