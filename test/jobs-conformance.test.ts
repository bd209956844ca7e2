// One conformance suite run over every built-in job type: each type only supplies its cases.
import test, { type ExecutionContext } from 'ava'
import { equalBytes } from '../shared/bytes.js'
import { decode, encode } from '../shared/codec.js'
import { ValidationError } from '../shared/errors.js'
import { kindOf, type JobType } from '../shared/job-type.js'
import { builtinJobTypes, findJobType, knnQuery, listJobTypes, nqueens, primes } from '../jobs/index.js'
import { manifestOf } from '../shared/content.js'
import { sha256Hex } from '../shared/digest.js'
import type { RunContext } from '../shared/job-type.js'
import { fnv1aBase64, fnvModule, primesModule } from './helpers/wasm.js'
import { parseParams } from '../coordinator/schema/index.js'

// The wasm job type runs the example modules, handed to it as resources the way workers do.
const fnvBytes = await fnvModule()
const primesBytes = await primesModule()
const FNV = await sha256Hex(fnvBytes)
const PRIMES = await sha256Hex(primesBytes)
// The knn job type reads a dataset: `split` gets its manifest as a resource, `run` its bytes as content.
// Row r of this dataset is the single byte r, so query q's nearest rows are q, q - 1, q + 1.
const LINE = Uint8Array.from({ length: 256 }, (_, r) => r)
const line = await manifestOf(LINE)
const resources: Record<string, Uint8Array> = {
  [FNV]: fnvBytes,
  [PRIMES]: primesBytes,
  [line.root]: line.encoded,
}
const resource = (h: string): Uint8Array | undefined => resources[h]
const contents: Record<string, Uint8Array> = { [line.root]: LINE }
const ctx = (extra: RunContext = {}): RunContext => ({ ...extra, resource, content: (r) => contents[r] })

/** The rows of LINE nearest to byte q, nearest first (ties to the lower row), and their distances. */
function nearest(q: number): { ids: number[]; dists: number[] } {
  if (q === 0) return { ids: [0, 1, 2], dists: [0, 1, 4] }
  if (q === 255) return { ids: [255, 254, 253], dists: [0, 1, 4] }
  return { ids: [q, q - 1, q + 1], dists: [0, 1, 1] }
}

/** The knn result over LINE: the k (1 to 3) nearest rows of each query byte. */
function lineNeighbours(count: number, seed: number, k: number): unknown {
  const near = Array.from({ length: count }, (_, j) => {
    const q = new Uint8Array(1)
    knnQuery(q, seed, j)
    return nearest(q[0]!)
  })
  return {
    queries: count,
    k,
    ids: near.map((n) => n.ids.slice(0, k)),
    dists: near.map((n) => n.dists.slice(0, k)),
  }
}

interface Case {
  title: string
  params: unknown
  answer: unknown
}

interface Cases {
  /** Params, and the published result of their job. */
  good: Case[]
  /** Params that parseParams refuses, and the field its ValidationError must name. */
  badParams: [params: unknown, field: string][]
  /** Inputs and outputs refused on top of the generic malformed shapes. */
  badInputs: unknown[]
  badOutputs: unknown[]
}

const cases: Record<string, Cases> = {
  'primes@1': {
    good: [
      { title: 'counts primes below 10^6', params: { to: 1e6 }, answer: { count: 78498, from: 0, to: 1e6 } },
      { title: 'counts primes below 10^7', params: { to: 1e7 }, answer: { count: 664579, from: 0, to: 1e7 } },
      {
        title: 'counts primes below 10^7 in 1000 units',
        params: { to: 1e7, unitSize: 1e4 },
        answer: { count: 664579, from: 0, to: 1e7 },
      },
      {
        title: 'counts primes from 100 to 1000',
        params: { from: 100, to: 1000 },
        answer: { count: 143, from: 100, to: 1000 },
      },
      { title: 'counts the prime 2 alone', params: { from: 2, to: 3 }, answer: { count: 1, from: 2, to: 3 } },
      { title: 'counts no prime below 2', params: { to: 2 }, answer: { count: 0, from: 0, to: 2 } },
    ],
    badParams: [
      [null, 'params'],
      [[1e6], 'params'],
      [{}, 'params.to'],
      [{ to: -5 }, 'params.to'],
      [{ to: 1.5 }, 'params.to'],
      [{ to: '1000' }, 'params.to'],
      [{ to: 1e12 + 1 }, 'params.to'],
      [{ to: 100, from: -1 }, 'params.from'],
      [{ to: 100, from: 100 }, 'params.from'],
      [{ to: 100, foo: 1 }, 'params.foo'],
      [{ to: 1e6, unitSize: 999 }, 'params.unitSize'],
      [{ to: 1e6, unitSize: 1e9 + 1 }, 'params.unitSize'],
      [{ to: 1e9, unitSize: 1000 }, 'params.unitSize'],
    ],
    badInputs: [
      { from: 5, to: 5 },
      { from: 0, to: 2e9 },
      { from: 0, to: 1e12 + 1 },
    ],
    badOutputs: [{ count: 1e9 + 1 }],
  },
  'nqueens@1': {
    good: [
      { title: 'counts 1 solution for n=1', params: { n: 1 }, answer: { n: 1, solutions: 1 } },
      { title: 'counts no solution for n=3', params: { n: 3 }, answer: { n: 3, solutions: 0 } },
      {
        title: 'counts no solution for n=2 split 2 rows deep',
        params: { n: 2, depth: 2 },
        answer: { n: 2, solutions: 0 },
      },
      {
        title: 'counts 2 solutions for n=4 split 4 rows deep',
        params: { n: 4, depth: 4 },
        answer: { n: 4, solutions: 2 },
      },
      { title: 'counts 4 solutions for n=6', params: { n: 6 }, answer: { n: 6, solutions: 4 } },
      { title: 'counts 92 solutions for n=8', params: { n: 8 }, answer: { n: 8, solutions: 92 } },
      {
        title: 'counts 92 solutions for n=8 in one unit',
        params: { n: 8, depth: 0 },
        answer: { n: 8, solutions: 92 },
      },
      { title: 'counts 724 solutions for n=10', params: { n: 10 }, answer: { n: 10, solutions: 724 } },
      {
        title: 'counts 14200 solutions for n=12',
        params: { n: 12, depth: 4 },
        answer: { n: 12, solutions: 14200 },
      },
    ],
    badParams: [
      [undefined, 'params'],
      [{}, 'params.n'],
      [{ n: 0 }, 'params.n'],
      [{ n: 19 }, 'params.n'],
      [{ n: '8' }, 'params.n'],
      [{ n: 8, depth: 5 }, 'params.depth'],
      [{ n: 3, depth: 4 }, 'params.depth'],
      [{ n: 8, depth: -1 }, 'params.depth'],
      [{ n: 8, rows: 2 }, 'params.rows'],
    ],
    badInputs: [
      { n: 8, prefix: [0, 1] },
      { n: 8, prefix: [8] },
      { n: 8, prefix: [0, 2, 4, 6, 1] },
      { n: 8, prefix: [0.5] },
      { n: 19, prefix: [] },
    ],
    badOutputs: [{ solutions: 666_090_625 }],
  },
  'knn@1': {
    good: [
      {
        title: 'finds the nearest byte of 10 queries in 4 units',
        params: { dataset: line.root, dim: 1, k: 1, queries: { count: 10, seed: 7 }, queriesPerUnit: 3 },
        answer: lineNeighbours(10, 7, 1),
      },
      {
        title: 'finds the 3 nearest bytes of 300 queries, ties to the lower row',
        params: { dataset: line.root, dim: 1, k: 3, queries: { count: 300 }, queriesPerUnit: 64 },
        answer: lineNeighbours(300, 0, 3),
      },
    ],
    badParams: [
      [null, 'params'],
      [{ dim: 1, k: 1, queries: { count: 1 } }, 'params.dataset'],
      [{ dataset: 'abc', dim: 1, k: 1, queries: { count: 1 } }, 'params.dataset'],
      [{ dataset: line.root, k: 1, queries: { count: 1 } }, 'params.dim'],
      [{ dataset: line.root, dim: 4097, k: 1, queries: { count: 1 } }, 'params.dim'],
      [{ dataset: line.root, dim: 1, k: 65, queries: { count: 1 } }, 'params.k'],
      [{ dataset: line.root, dim: 1, k: 1 }, 'params.queries'],
      [{ dataset: line.root, dim: 1, k: 1, queries: { count: 0 } }, 'params.queries.count'],
      [{ dataset: line.root, dim: 1, k: 1, queries: { count: 1, seed: -1 } }, 'params.queries.seed'],
      [
        { dataset: line.root, dim: 1, k: 1, queries: { count: 1 }, queriesPerUnit: 0 },
        'params.queriesPerUnit',
      ],
      [{ dataset: line.root, dim: 1, k: 1, queries: { count: 1 }, foo: 1 }, 'params.foo'],
    ],
    badInputs: [
      { dataset: { root: line.root, size: 256 }, dim: 3, k: 1, seed: 0, first: 0, count: 1 },
      { dataset: { root: line.root, size: 256 }, dim: 1, k: 1, seed: 0, first: 999_999, count: 2 },
      { dataset: { root: 'x', size: 256 }, dim: 1, k: 1, seed: 0, first: 0, count: 1 },
    ],
    badOutputs: [
      { ids: [0], dists: [] },
      { ids: [], dists: [] },
    ],
  },
  'wasm@1': {
    good: [
      {
        title: 'hashes inline UTF-8 records with the WAT FNV-1a module',
        params: {
          module: FNV,
          input: { records: ['hello', 'cohort', ''], encoding: 'utf8' },
          recordsPerUnit: 2,
        },
        answer: { records: 3, outputs: ['hello', 'cohort', ''].map(fnv1aBase64) },
      },
      {
        title: 'concatenates the outputs of base64 records',
        params: { module: FNV, input: { records: ['aGVsbG8=', 'Y29ob3J0'] }, merge: 'concat' },
        answer: {
          records: 2,
          output: Buffer.concat(
            ['hello', 'cohort'].map((x) => Buffer.from(fnv1aBase64(x), 'base64')),
          ).toString('base64'),
        },
      },
      {
        title: 'counts primes below 10^6 with the AssemblyScript module over a range',
        params: { module: PRIMES, input: { range: { from: 0, to: 1e6, step: 1e5 } }, merge: 'sum-u64' },
        answer: { records: 10, sum: '78498' },
      },
    ],
    badParams: [
      [null, 'params'],
      [{ input: { records: ['a'] } }, 'params.module'],
      [{ module: 'abc', input: { records: ['a'] } }, 'params.module'],
      [{ module: FNV }, 'params.input'],
      [{ module: FNV, input: {} }, 'params.input'],
      [{ module: FNV, input: { records: [] } }, 'params.input.records'],
      [{ module: FNV, input: { records: ['@@'] } }, 'params.input.records[0]'],
      [{ module: FNV, input: { records: [1] } }, 'params.input.records[0]'],
      [{ module: FNV, input: { records: ['a'], encoding: 'hex' } }, 'params.input.encoding'],
      [{ module: FNV, input: { range: { from: 5, to: 5 } } }, 'params.input.range.from'],
      [{ module: FNV, input: { range: { from: 0, to: 1e9, step: 1 } } }, 'params.recordsPerUnit'],
      [{ module: FNV, input: { records: ['YQ=='] }, timeLimitMs: 50 }, 'params.timeLimitMs'],
      [{ module: FNV, input: { records: ['YQ=='] }, merge: 'sum' }, 'params.merge'],
      [{ module: FNV, input: { records: ['YQ=='] }, compare: 'close' }, 'params.compare'],
      [{ module: FNV, input: { records: ['YQ=='] }, foo: 1 }, 'params.foo'],
    ],
    badInputs: [
      { module: FNV, records: [], timeLimitMs: 1000 },
      { module: FNV, records: ['!!'], timeLimitMs: 1000 },
      { module: FNV, records: ['YQ'], timeLimitMs: 50 },
    ],
    badOutputs: [{ error: 5 }, { error: 'x', outputs: [] }, { outputs: ['x'] }],
  },
}

/** Shapes no job type may accept: non-records, a missing or mistyped field, an extra field. */
function malformed(valid: unknown): unknown[] {
  const rec = valid as Record<string, unknown>
  const out: unknown[] = [null, undefined, 42, 'x', [], [rec], new Uint8Array(4), { ...rec, extra: 1 }]
  for (const key of Object.keys(rec)) {
    out.push(Object.fromEntries(Object.entries(rec).filter(([k]) => k !== key)))
    for (const bad of [-1, 1.5, '1', null, true, {}, 2 ** 60]) out.push({ ...rec, [key]: bad })
  }
  return out
}

/** Asserts that `parse` throws a ValidationError naming a field under `prefix`. */
function refuses(t: ExecutionContext, parse: (raw: unknown) => unknown, raw: unknown, prefix: string): void {
  const shown = raw instanceof Uint8Array ? 'bytes' : JSON.stringify(raw)
  const err = t.throws(() => parse(raw), { instanceOf: ValidationError }, `refuses ${shown}`)
  if (err !== undefined) t.true(err.field.startsWith(prefix), `${shown}: field ${err.field}`)
}

test('jobs - every builtin job type has conformance cases', (t) => {
  t.deepEqual([...builtinJobTypes.keys()].sort(), Object.keys(cases).sort())
})

test('jobs - lookups find types by kind, name and version', (t) => {
  t.is(builtinJobTypes.get('primes@1'), primes)
  t.is(findJobType('nqueens'), nqueens)
  t.is(findJobType('primes', 1), primes)
  t.is(findJobType('primes', 2), undefined)
  t.is(findJobType('nope'), undefined)
  t.deepEqual(
    listJobTypes().map((j) => kindOf(j)),
    ['knn@1', 'nqueens@1', 'primes@1', 'wasm@1'],
  )
})

for (const [kind, anyType] of builtinJobTypes) {
  const suite = cases[kind]
  if (suite === undefined) continue
  const type: JobType = anyType
  const name = type.name

  test(`${name} - describes itself`, (t) => {
    t.regex(type.name, /^[a-z][a-z0-9-]*$/)
    t.true(Number.isSafeInteger(type.version) && type.version >= 1)
    t.true(type.description.length > 0)
    t.is(type.paramsSchema.type, 'object')
    t.true(Number.isSafeInteger(type.maxUnits) && type.maxUnits >= 1)
  })

  test(`${name} - refuses bad params naming the field`, (t) => {
    for (const [params, field] of suite.badParams) {
      const err = t.throws(() => parseParams(type, params), { instanceOf: ValidationError })
      t.is(err?.field, field, JSON.stringify(params))
    }
  })

  for (const c of suite.good) {
    test(`${name} - ${c.title}`, (t) => {
      const params = parseParams(type, c.params)
      t.deepEqual(parseParams(type, JSON.parse(JSON.stringify(params))), params, 'parsed params re-parse')
      const inputs = type.split(params, resource)
      t.true(inputs.length >= 1 && inputs.length <= type.maxUnits)
      t.is(type.estimateCost(params).units, inputs.length)
      t.true(type.estimateCost(params).unitSeconds > 0)
      const outputs = inputs.map((input) => {
        const received = type.parseInput(decode(encode(input)))
        t.deepEqual(received, input)
        const first = encode(type.run(received, ctx()))
        const again = encode(type.run(type.parseInput(decode(encode(input))), ctx()))
        t.true(equalBytes(first, again), 'run is deterministic')
        const output = type.parseOutput(decode(first))
        t.true(equalBytes(encode(output), first), 'parseOutput keeps the output')
        return output
      })
      t.deepEqual(type.merge(params, outputs), c.answer)
    })
  }

  test(`${name} - refuses malformed inputs`, (t) => {
    const params = parseParams(type, suite.good[0]?.params)
    const valid = type.split(params, resource)[0]
    for (const raw of [...malformed(valid), ...suite.badInputs])
      refuses(t, (r) => type.parseInput(r), raw, 'input')
  })

  test(`${name} - refuses malformed outputs`, (t) => {
    const params = parseParams(type, suite.good[0]?.params)
    const valid = type.run(type.split(params, resource)[0], ctx())
    for (const raw of [...malformed(valid), ...suite.badOutputs])
      refuses(t, (r) => type.parseOutput(r), raw, 'output')
  })

  test(`${name} - merge refuses a wrong number of outputs`, (t) => {
    const params = parseParams(type, suite.good[0]?.params)
    t.throws(() => type.merge(params, []), { instanceOf: ValidationError })
  })

  test(`${name} - run stops with an AbortError when aborted`, (t) => {
    const input = type.split(parseParams(type, suite.good[0]?.params), resource)[0]
    const err = t.throws(() => type.run(input, ctx({ signal: AbortSignal.abort() })))
    t.is(err?.name, 'AbortError')
  })
}

test('primes - counts 50,847,534 primes below 10^9', (t) => {
  const started = performance.now()
  const params = parseParams(primes, { to: 1e9 })
  const outputs = primes.split(params).map((input) => primes.run(input, {}))
  t.deepEqual(primes.merge(params, outputs), { count: 50_847_534, from: 0, to: 1e9 })
  t.log(`pi(10^9) in ${outputs.length} units: ${Math.round(performance.now() - started)} ms`)
})

test('nqueens - counts 365,596 solutions for n=14', (t) => {
  const started = performance.now()
  const params = parseParams(nqueens, { n: 14 })
  const outputs = nqueens.split(params).map((input) => nqueens.run(input, {}))
  t.deepEqual(nqueens.merge(params, outputs), { n: 14, solutions: 365_596 })
  t.log(`Q(14) in ${outputs.length} units: ${Math.round(performance.now() - started)} ms`)
})
