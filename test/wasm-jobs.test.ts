// WebAssembly jobs: modules uploaded over HTTP (refused with a 422 naming the rule they break) run as
// `wasm` jobs on worker daemons to quorum-validated results; modules that trap, exhaust their memory
// or loop forever fail their jobs with the reason while the workers carry on; and a worker refuses
// module bytes that do not hash to the name in its signed unit.
import test from 'ava'
import { Redis } from 'ioredis'
import { compileWat } from '../scripts/wasm-build.js'
import { sha256Hex } from '../shared/index.js'
import { createModuleCache, ModuleIntegrityError } from '../worker/index.js'
import { startCluster, waitForJob, waitUntil } from './helpers/cluster.js'
import { useServices } from './helpers/services.js'
import { fixture, FIXTURES, fnv1aBase64, fnvModule, primesModule, upload, uploadOk } from './helpers/wasm.js'

const services = useServices(test)

test('wasm - an AssemblyScript and a WAT module run as jobs on two daemons to validated results', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const [a, b] = [await cluster.addWorker(), await cluster.addWorker()]
  const url = cluster.coordinators[0]!.url
  const primes = await uploadOk(url, await primesModule())
  const fnv = await uploadOk(url, await fnvModule())

  const pj = await cluster.api.submit({
    type: 'wasm',
    params: { module: primes, input: { range: { from: 0, to: 2_000_000, step: 250_000 } }, merge: 'sum-u64' },
  })
  const words = ['volunteer', 'computing', 'with', 'WebAssembly', '', 'ünïcödé']
  const fj = await cluster.api.submit({
    type: 'wasm',
    params: { module: fnv, input: { records: words, encoding: 'utf8' }, recordsPerUnit: 2 },
  })
  const [pd, fd] = [await waitForJob(cluster.api, pj.id), await waitForJob(cluster.api, fj.id)]
  t.is(pd.state, 'completed', JSON.stringify(pd))
  t.is(fd.state, 'completed', JSON.stringify(fd))
  t.deepEqual((await cluster.api.result(pj.id)).result, { records: 8, sum: '148933' })
  t.deepEqual((await cluster.api.result(fj.id)).result, { records: 6, outputs: words.map(fnv1aBase64) })
  t.is(pd.units.validated, 8)
  t.is(fd.units.validated, 3)
  // Quorum 2 with two daemons: both computed every unit.
  t.true(a.daemon.stats.resultsAccepted >= 11 && b.daemon.stats.resultsAccepted >= 11)
})

test('wasm - a trap, a memory bomb and an infinite loop fail their jobs with the reason; the workers carry on', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const workers = [await cluster.addWorker(), await cluster.addWorker()]
  const url = cluster.coordinators[0]!.url
  const submit = async (bytes: Uint8Array, extra: Record<string, unknown> = {}) =>
    cluster.api.submit({
      type: 'wasm',
      params: { module: await uploadOk(url, bytes), input: { records: ['AA=='] }, ...extra },
    })
  const trap = await submit(await FIXTURES.trap())
  const bomb = await submit(await FIXTURES.memoryBomb())
  const loop = await submit(await FIXTURES.loop(), { timeLimitMs: 500 })

  const expected: [string, RegExp][] = [
    [trap.id, /^unit 0 failed: record 0: trap: unreachable \(memory: 1 of 256 pages in use\)$/],
    [bomb.id, /^unit 0 failed: record 0: trap: unreachable \(memory: 241 of 256 pages in use\)$/],
    [loop.id, /^unit 0 failed: time limit: the unit ran longer than 500 ms$/],
  ]
  for (const [id, reason] of expected) {
    const done = await waitForJob(cluster.api, id)
    t.is(done.state, 'failed')
    t.regex(done.error ?? '', reason)
    t.is(done.units.validated, 1, 'the failure itself was agreed by a quorum')
  }
  // Nothing crashed: the same workers run the next job to its answer.
  const good = await submit(await fnvModule(), { input: { records: ['hello'], encoding: 'utf8' } })
  const done = await waitForJob(cluster.api, good.id)
  t.is(done.state, 'completed')
  t.deepEqual((await cluster.api.result(good.id)).result, { records: 1, outputs: [fnv1aBase64('hello')] })
  for (const w of workers) t.is(w.daemon.stats.unitsFailed, 0, 'failures were results, not crashes')
})

test('modules - uploads are refused with a 422 naming the rule; accepted ones are served by hash', async (t) => {
  const cluster = await startCluster({ services: services(), tuning: { maxModuleBytes: 64 * 1024 } })
  t.teardown(() => cluster.stop())
  const url = cluster.coordinators[0]!.url
  const cases: [string, Promise<Uint8Array> | Uint8Array, string][] = [
    ['a clock import', FIXTURES.forbiddenImport(), 'forbidden-import'],
    [
      'a WASI import',
      fixture('(i64.const 0)', {
        head: '(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))',
      }),
      'forbidden-import',
    ],
    ['its own memory', fixture('(i64.const 0)', { memory: '(memory 1 2)' }), 'own-memory'],
    [
      'a memory without a maximum',
      fixture('(i64.const 0)', { memory: '(import "cohort" "memory" (memory 1))' }),
      'memory-import',
    ],
    [
      'a memory above the cap',
      fixture('(i64.const 0)', { memory: '(import "cohort" "memory" (memory 1 257))' }),
      'memory-import',
    ],
    [
      'an exported memory',
      fixture('(i64.const 0)', {
        memory: '(import "cohort" "memory" (memory 1 2)) (export "mem" (memory 0))',
      }),
      'exported-memory',
    ],
    [
      'shared memory',
      fixture('(i64.const 0)', {
        memory: '(import "cohort" "memory" (memory 1 2 shared))',
        features: { threads: true },
      }),
      'threads',
    ],
    [
      'atomics',
      compileWat(
        `(module (import "cohort" "memory" (memory 1 2))
          (func (export "alloc") (param i32) (result i32) (i32.const 0))
          (func (export "run") (param i32 i32) (result i64)
            (drop (i32.atomic.rmw.add (i32.const 0) (i32.const 1))) (i64.const 0)))`,
        { threads: true },
      ),
      'threads',
    ],
    [
      'relaxed SIMD',
      fixture(
        '(drop (f32x4.relaxed_madd (v128.const i32x4 0 0 0 0) (v128.const i32x4 0 0 0 0) (v128.const i32x4 0 0 0 0))) (i64.const 0)',
        { features: { simd: true, relaxed_simd: true } },
      ),
      'relaxed-simd',
    ],
    [
      'no run export',
      compileWat(
        '(module (import "cohort" "memory" (memory 1 2)) (func (export "alloc") (param i32) (result i32) (i32.const 0)))',
      ),
      'missing-export',
    ],
    ['bytes that are not WebAssembly', new TextEncoder().encode('#!/bin/sh\nrm -rf /\n'), 'malformed'],
    ['a module over the size limit', new Uint8Array(64 * 1024 + 1), 'too-large'],
  ]
  for (const [what, bytes, rule] of cases) {
    const r = await upload(url, await bytes)
    const expectedStatus = rule === 'too-large' ? 413 : 422
    t.is(r.status, expectedStatus, `${what}: ${JSON.stringify(r.body)}`)
    if (expectedStatus === 422) {
      t.is(r.body['rule'], rule, what)
      t.is(r.body['type'], 'urn:cohort:problem:module-refused')
      t.regex(String(r.body['detail']), new RegExp(`^${rule}: `))
    }
  }
  t.is((await upload(url, await fnvModule(), 'application/octet-stream')).status, 415)

  const bytes = await fnvModule()
  const first = await upload(url, bytes)
  t.is(first.status, 201)
  t.is(first.body['hash'], await sha256Hex(bytes))
  t.is((await upload(url, bytes)).status, 200, 'the same bytes again')
  const got = await fetch(`${url}/v1/modules/${first.body['hash'] as string}`)
  t.is(got.headers.get('content-type'), 'application/wasm')
  t.deepEqual(new Uint8Array(await got.arrayBuffer()), bytes)
  t.is((await fetch(`${url}/v1/modules/${'0'.repeat(64)}`)).status, 404)
  t.is((await fetch(`${url}/v1/modules/nothex`)).status, 404)
  t.true(cluster.coordinators[0]!.counters.modulesRefused >= cases.length - 1)
})

test('modules - the module cache refuses bytes whose hash differs from the name it asked for', async (t) => {
  const good = await fnvModule()
  const hash = await sha256Hex(good)
  const other = await FIXTURES.trap()
  const cache = createModuleCache({ fetch: () => Promise.resolve(other) })
  const err = await t.throwsAsync(cache.get(hash), { instanceOf: ModuleIntegrityError })
  t.regex(err?.message ?? '', /hash to [0-9a-f]{64}, not [0-9a-f]{64}: refused/)
  // Right hash, but the bytes break a rule (a forged module with a clock import).
  const forged = await FIXTURES.forbiddenImport()
  const cache2 = createModuleCache({ fetch: () => Promise.resolve(forged) })
  await t.throwsAsync(cache2.get(await sha256Hex(forged)), { instanceOf: ModuleIntegrityError })
  // Good bytes are fetched once, then served from the cache.
  let fetches = 0
  const cache3 = createModuleCache({ fetch: () => (fetches++, Promise.resolve(good)) })
  t.deepEqual(await Promise.all([cache3.get(hash), cache3.get(hash)]), [good, good])
  t.deepEqual(await cache3.get(hash), good)
  t.is(fetches, 1)
  t.deepEqual(cache3.stats, { hits: 1, fetched: 1, refused: 0 })
})

test('modules - a worker refuses to run a module whose stored bytes were tampered with in Redis', async (t) => {
  const cluster = await startCluster({ services: services(), tuning: { maxWorkersPerUnit: 1 } })
  t.teardown(() => cluster.stop())
  const url = cluster.coordinators[0]!.url
  const hash = await uploadOk(url, await fnvModule())
  // Someone with Redis access swaps the bytes for another valid module (one that always traps).
  const redis = new Redis(services().redisUrl)
  await redis.set(`${cluster.redisPrefix}module:${hash}`, Buffer.from(await FIXTURES.trap()))
  redis.disconnect()
  const w = await cluster.addWorker()
  const job = await cluster.api.submit({
    type: 'wasm',
    params: { module: hash, input: { records: ['hello'], encoding: 'utf8' } },
    redundancy: { quorum: 1, maxReplicas: 1 },
  })
  await waitUntil('the worker refused the module', () => w.daemon.stats.unitsFailed >= 1)
  const done = await waitForJob(cluster.api, job.id)
  t.is(done.state, 'failed')
  t.regex(done.error ?? '', /1 distinct workers took it and let it go without a result/)
  t.is(w.daemon.stats.resultsAccepted, 0, 'nothing computed with the tampered bytes was submitted')
})
