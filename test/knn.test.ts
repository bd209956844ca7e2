// knn@1: the kernel against a full sort, splitting, the strict parsers, and the host's hooks.
import test from 'ava'
import { encode } from '../shared/codec.js'
import { manifestOf } from '../shared/content.js'
import { UnrecoverableError, ValidationError } from '../shared/errors.js'
import type { RunContext } from '../shared/job-type.js'
import { knn, knnDataset, knnQuery, type KnnInput, type KnnOutput } from '../jobs/index.js'
import { parseParams } from '../coordinator/schema/index.js'

/** A dataset as the coordinator and a worker see it: its manifest by root, its bytes by root. */
interface Hosted {
  root: string
  size: number
  resource: (hash: string) => Uint8Array | undefined
  ctx: (extra?: RunContext) => RunContext
}

async function host(data: Uint8Array): Promise<Hosted> {
  const { root, encoded } = await manifestOf(data)
  return {
    root,
    size: data.length,
    resource: (hash) => (hash === root ? encoded : undefined),
    ctx: (extra = {}) => ({ ...extra, content: (r) => (r === root ? data : undefined) }),
  }
}

/** The reference: every row's distance, sorted by (distance, row), the first k kept. */
function reference(data: Uint8Array, dim: number, k: number, seed: number, first: number, count: number) {
  const ids: number[] = []
  const dists: number[] = []
  const q = new Uint8Array(dim)
  for (let j = first; j < first + count; j++) {
    knnQuery(q, seed, j)
    const all: [number, number][] = []
    for (let r = 0; r < data.length / dim; r++) {
      let d = 0
      for (let i = 0; i < dim; i++) d += (data[r * dim + i]! - q[i]!) ** 2
      all.push([d, r])
    }
    all.sort((a, b) => a[0] - b[0] || a[1] - b[1])
    for (const [d, r] of all.slice(0, k)) {
      ids.push(r)
      dists.push(d)
    }
  }
  return { ids, dists }
}

/** Rows drawn from only `distinct` different rows whose bytes take `levels` values: many ties. */
function tiedDataset(rows: number, dim: number, distinct: number, levels: number, seed: number): Uint8Array {
  const pool = knnDataset(distinct, dim, seed).map((b) => b % levels)
  const pick = knnDataset(rows, 1, seed + 1)
  const out = new Uint8Array(rows * dim)
  for (let r = 0; r < rows; r++) {
    const at = (pick[r]! % distinct) * dim
    out.set(pool.subarray(at, at + dim), r * dim)
  }
  return out
}

function input(h: Hosted, dim: number, k: number, seed: number, first: number, count: number): KnnInput {
  return { dataset: { root: h.root, size: h.size }, dim, k, seed, first, count }
}

test('knn - matches a full sort on random datasets', async (t) => {
  for (const [rows, dim, k, seed] of [
    [1, 1, 1, 1],
    [50, 1, 7, 2],
    [200, 3, 10, 3],
    [300, 8, 64, 4],
    [97, 33, 5, 5],
    [40, 129, 40, 6],
  ] as const) {
    const data = knnDataset(rows, dim, seed)
    const h = await host(data)
    const unit = input(h, dim, k, seed * 31, 11, 6)
    t.deepEqual(knn.run(unit, h.ctx()), reference(data, dim, k, seed * 31, 11, 6), `${rows}x${dim} k=${k}`)
  }
})

test('knn - breaks ties by row index, with duplicate rows and k = rows', async (t) => {
  for (const [rows, dim, distinct, levels, k] of [
    [64, 4, 5, 2, 64],
    [100, 3, 3, 4, 30],
    [120, 7, 120, 2, 17],
    [33, 5, 1, 256, 33],
  ] as const) {
    const data = tiedDataset(rows, dim, distinct, levels, rows + dim)
    const h = await host(data)
    const unit = input(h, dim, k, 9, 0, 12)
    const out = knn.run(unit, h.ctx())
    t.deepEqual(out, reference(data, dim, k, 9, 0, 12), `${rows}x${dim} ${distinct} distinct rows, k=${k}`)
    if (k === rows)
      t.deepEqual(
        [...out.ids.slice(0, k)].sort((a, b) => a - b),
        [...Array(rows).keys()],
      )
  }
})

test('knn - reads a view over shared memory at any offset', async (t) => {
  const data = knnDataset(150, 5, 77)
  const shared = new Uint8Array(new SharedArrayBuffer(data.length + 3), 3)
  shared.set(data)
  const h = await host(data)
  const unit = input(h, 5, 9, 1, 0, 4)
  t.deepEqual(knn.run(unit, { content: () => shared }), knn.run(unit, h.ctx()))
})

test('knn - one unit or many give the same result', async (t) => {
  const data = knnDataset(500, 12, 8)
  const h = await host(data)
  const base = { dataset: h.root, dim: 12, k: 6, queries: { count: 23, seed: 5 } }
  const results = [1, 4, 23].map((queriesPerUnit) => {
    const params = parseParams(knn, { ...base, queriesPerUnit })
    const inputs = knn.split(params, h.resource)
    t.is(inputs.length, knn.estimateCost(params).units)
    t.deepEqual(
      inputs.map((u) => [u.first, u.count]),
      Array.from({ length: inputs.length }, (_, i) => [
        i * queriesPerUnit,
        Math.min(queriesPerUnit, 23 - i * queriesPerUnit),
      ]),
    )
    return knn.merge(
      params,
      inputs.map((u) => knn.run(u, h.ctx())),
    )
  })
  t.deepEqual(results[1], results[0])
  t.deepEqual(results[2], results[0])
  const { ids, dists } = reference(data, 12, 6, 5, 0, 23)
  t.deepEqual(results[0]?.ids.flat(), ids)
  t.deepEqual(results[0]?.dists.flat(), dists)
  t.is(results[0]?.queries, 23)
  t.is(results[0]?.ids.length, 23)
})

/** Bytes of the documented generator (docs/job-types.md), computed apart from jobs/knn-data.ts. */
const PINNED_QUERY = [14, 47, 202, 146, 243, 227, 214, 60, 204, 125]
const PINNED_DATASET = [125, 244, 134, 18, 109, 176, 34, 251, 75, 209, 148, 164, 172, 89, 143]

test('knn - queries and datasets are pinned', (t) => {
  // The generator is part of knn@1: changing these bytes needs a new version.
  const q = new Uint8Array(10)
  knnQuery(q, 0, 0)
  const again = new Uint8Array(10)
  knnQuery(again, 0, 0)
  t.deepEqual(again, q)
  knnQuery(again, 0, 1)
  t.notDeepEqual(again, q)
  knnQuery(again, 1, 0)
  t.notDeepEqual(again, q)
  t.deepEqual([...q], PINNED_QUERY)
  t.deepEqual([...knnDataset(3, 5, 42)], PINNED_DATASET)
  // A query's leading bytes do not depend on its dimension.
  const longer = new Uint8Array(16)
  knnQuery(longer, 0, 0)
  t.deepEqual(longer.subarray(0, 10), q)
})

test('knn - split names the param the dataset contradicts', async (t) => {
  const h = await host(knnDataset(10, 6, 1))
  const cases: [params: Record<string, unknown>, field: string][] = [
    [{ dim: 8, k: 1 }, 'params.dim'],
    [{ dim: 7, k: 1 }, 'params.dim'],
    [{ dim: 6, k: 11 }, 'params.k'],
    [{ dim: 60, k: 2 }, 'params.k'],
  ]
  for (const [p, field] of cases) {
    const params = parseParams(knn, { dataset: h.root, queries: { count: 3 }, ...p })
    const err = t.throws(() => knn.split(params, h.resource), { instanceOf: ValidationError })
    t.is(err?.field, field, JSON.stringify(p))
  }
  const ok = parseParams(knn, { dataset: h.root, dim: 6, k: 10, queries: { count: 3 } })
  t.is(knn.split(ok, h.resource).length, 1)
  const missing = { ...ok, dataset: 'a'.repeat(64) }
  for (const resource of [h.resource, undefined, () => new Uint8Array([1, 2, 3]), () => encode({})]) {
    const err = t.throws(() => knn.split(missing, resource), { instanceOf: ValidationError })
    t.is(err?.field, 'params.dataset')
  }
  t.regex(t.throws(() => knn.split(missing, h.resource))?.message ?? '', /POST \/v1\/datasets/)
})

test('knn - parseParams fills defaults and names bad fields', (t) => {
  const dataset = 'b'.repeat(64)
  const params = parseParams(knn, { dataset, dim: 64, k: 10, queries: { count: 100 } })
  t.deepEqual(params, { dataset, dim: 64, k: 10, queries: { count: 100, seed: 0 }, queriesPerUnit: 8 })
  t.deepEqual(knn.planResources?.(params), [dataset])
  t.is(knn.estimateCost(params).units, 13)
  t.is(parseParams(knn, { dataset, dim: 1, k: 1, queries: { count: 1_000_000 } }).queriesPerUnit, 10)
  const good = { dataset, dim: 8, k: 4, queries: { count: 10, seed: 1 } }
  const cases: [params: unknown, field: string][] = [
    [{ ...good, dataset: undefined }, 'params.dataset'],
    [{ ...good, dataset: dataset.toUpperCase() }, 'params.dataset'],
    [{ ...good, dim: 0 }, 'params.dim'],
    [{ ...good, dim: 4097 }, 'params.dim'],
    [{ ...good, k: 0 }, 'params.k'],
    [{ ...good, k: 65 }, 'params.k'],
    [{ ...good, queries: 10 }, 'params.queries'],
    [{ ...good, queries: { seed: 1 } }, 'params.queries.count'],
    [{ ...good, queries: { count: 0 } }, 'params.queries.count'],
    [{ ...good, queries: { count: 1_000_001 } }, 'params.queries.count'],
    [{ ...good, queries: { count: 1, seed: -1 } }, 'params.queries.seed'],
    [{ ...good, queries: { count: 1, seed: 2 ** 32 } }, 'params.queries.seed'],
    [{ ...good, queries: { count: 1, step: 1 } }, 'params.queries.step'],
    [{ ...good, queriesPerUnit: 0 }, 'params.queriesPerUnit'],
    [{ ...good, k: 64, queriesPerUnit: 1025 }, 'params.queriesPerUnit'],
    [{ ...good, queries: { count: 1_000_000 }, queriesPerUnit: 9 }, 'params.queriesPerUnit'],
    [{ ...good, rows: 5 }, 'params.rows'],
  ]
  for (const [raw, field] of cases) {
    const err = t.throws(() => parseParams(knn, raw), { instanceOf: ValidationError })
    t.is(err?.field, field, JSON.stringify(raw))
  }
})

test('knn - parseInput refuses malformed units', (t) => {
  const root = 'c'.repeat(64)
  const good = { dataset: { root, size: 400 }, dim: 4, k: 3, seed: 1, first: 5, count: 2 }
  t.deepEqual(knn.parseInput(good), good)
  t.deepEqual(knn.content?.(good), [{ root, size: 400 }])
  for (const raw of [
    { ...good, dataset: { root, size: 402 } },
    { ...good, dataset: { root, size: 8 } },
    { ...good, dataset: { root, size: 0 } },
    { ...good, dataset: { root, size: 2 ** 40 } },
    { ...good, dataset: { root: root.toUpperCase(), size: 400 } },
    { ...good, dataset: { root, size: 400, chunks: 7 } },
    { ...good, dataset: root },
    { ...good, dim: 4097 },
    { ...good, k: 65 },
    { ...good, seed: 2 ** 32 },
    { ...good, first: 999_999 },
    { ...good, count: 0 },
    { ...good, k: 64, dataset: { root, size: 4 * 64 }, count: 1025 },
    { ...good, rows: 100 },
  ]) {
    const err = t.throws(() => knn.parseInput(raw), { instanceOf: ValidationError }, JSON.stringify(raw))
    t.true(err?.field.startsWith('input') === true)
  }
})

test('knn - parseOutput and merge refuse wrong lengths and ranges', (t) => {
  t.deepEqual(knn.parseOutput({ ids: [3, 1], dists: [0, 9] }), { ids: [3, 1], dists: [0, 9] })
  for (const [raw, field] of [
    [{ ids: [1, 2], dists: [0] }, 'output.dists'],
    [{ ids: [], dists: [] }, 'output.ids'],
    [{ ids: [-1], dists: [0] }, 'output.ids[0]'],
    [{ ids: [0.5], dists: [0] }, 'output.ids[0]'],
    [{ ids: [0], dists: [4096 * 255 * 255 + 1] }, 'output.dists[0]'],
    [{ ids: Array(65_537).fill(0), dists: Array(65_537).fill(0) }, 'output.ids'],
    [{ ids: [0] }, 'output.dists'],
  ] as const) {
    const err = t.throws(() => knn.parseOutput(raw), { instanceOf: ValidationError })
    t.is(err?.field, field)
  }
  const params = parseParams(knn, {
    dataset: 'd'.repeat(64),
    dim: 1,
    k: 2,
    queries: { count: 3 },
    queriesPerUnit: 2,
  })
  const four: KnnOutput = { ids: [0, 1, 2, 3], dists: [0, 0, 0, 0] }
  const two: KnnOutput = { ids: [0, 1], dists: [0, 1] }
  t.deepEqual(knn.merge(params, [four, two]), {
    queries: 3,
    k: 2,
    ids: [
      [0, 1],
      [2, 3],
      [0, 1],
    ],
    dists: [
      [0, 0],
      [0, 0],
      [0, 1],
    ],
  })
  for (const outputs of [[four], [four, four], [two, two], [four, two, two]]) {
    t.throws(() => knn.merge(params, outputs), { instanceOf: ValidationError })
  }
})

test('knn - shouldYield returning true stops the kernel; progress reaches 1', async (t) => {
  const data = knnDataset(20_000, 64, 3)
  const h = await host(data)
  const unit = input(h, 64, 5, 1, 0, 3)
  let calls = 0
  const stopped = t.throws(() => knn.run(unit, h.ctx({ shouldYield: () => ++calls === 3 })))
  t.is(stopped?.name, 'AbortError')
  t.is(calls, 3)
  const aborted = t.throws(() => knn.run(unit, h.ctx({ signal: AbortSignal.abort() })))
  t.is(aborted?.name, 'AbortError')
  const seen: number[] = []
  let yields = 0
  knn.run(unit, h.ctx({ progress: (f) => seen.push(f), shouldYield: () => (yields++, false) }))
  t.true(yields >= 3 * Math.ceil((20_000 * 64) / (256 * 1024)), `${yields} calls to shouldYield`)
  t.is(seen.at(-1), 1)
  t.true(seen.every((f, i) => f >= 0 && f <= 1 && (i === 0 || f >= seen[i - 1]!)))
})

test('knn - refuses to run without its dataset or with one of another size', async (t) => {
  const data = knnDataset(10, 4, 2)
  const h = await host(data)
  const unit = input(h, 4, 2, 1, 0, 1)
  const cases: [RunContext, RegExp][] = [
    [{}, /not given/],
    [{ content: () => undefined }, /not given/],
    [{ content: () => data.subarray(4) }, /36 bytes; the unit names 40/],
    [{ content: () => new Uint8Array(44) }, /44 bytes/],
  ]
  for (const [ctx, message] of cases) {
    t.throws(() => knn.run(unit, ctx), { instanceOf: UnrecoverableError, message })
  }
})
