// Job type `knn@1`: exact k-nearest-neighbour search over an uploaded dataset (POST /v1/datasets) of
// rows of `dim` unsigned bytes. Every unit reads the whole dataset, which workers fetch once as
// hash-checked chunks from their peers (`content(input)`), and searches it for its own range of
// generated queries (jobs/knn-data.ts), so a unit carries only the dataset's root and the range.
import { decodeManifest, MAX_CONTENT_BYTES, parseContentRef, type ContentRef } from '../shared/content.js'
import { ProtocolError, UnrecoverableError, ValidationError } from '../shared/errors.js'
import type { JobType, PlanResource } from '../shared/job-type.js'
import { hooksOf } from './kernel-hooks.js'
import { searchKnn, type KnnNeighbours } from './knn-search.js'
import { Closed, HASH_PATTERN, T, type Static } from './schema.js'
import { readInt, readIntList, readRecord } from './validate.js'

export interface KnnParams {
  /** Root of the dataset's manifest (SHA-256 hex). */
  dataset: string
  dim: number
  k: number
  queries: { count: number; seed: number }
  /** Queries per unit (the default is filled in by completeParams). */
  queriesPerUnit: number
}

export interface KnnInput {
  dataset: ContentRef
  dim: number
  k: number
  seed: number
  /** The unit's queries: `first`, …, `first + count - 1`. */
  first: number
  count: number
}

export type KnnOutput = KnnNeighbours

export interface KnnResult {
  queries: number
  k: number
  /** Per query, the row indices of its k nearest rows, nearest first (ties: lower index first). */
  ids: number[][]
  /** Per query, their squared L2 distances. */
  dists: number[][]
}

const MAX_UNITS = 100_000
const MAX_DIM = 4096
const MAX_K = 64
const MAX_QUERIES = 1_000_000
const MAX_SEED = 0xffff_ffff
const MAX_QUERIES_PER_UNIT = 100_000
/** Neighbours one unit may return: two lists of at most 5-byte integers stay well under 1 MiB. */
const MAX_NEIGHBOURS_PER_UNIT = 65_536
/** 8 queries over 64 MiB is one to two seconds on a desktop core. */
const DEFAULT_QUERIES_PER_UNIT = 8
/** Largest squared distance: MAX_DIM * 255^2. */
const MAX_DIST = MAX_DIM * 255 * 255
/** Measured: about 1.7 ns per dataset byte per query (dim 64, V8). */
const SECONDS_PER_BYTE = 1.7e-9
/** The dataset's size is known only once split has read its manifest; estimates assume this. */
const NOMINAL_DATASET_BYTES = 64 * 1024 * 1024

const unitCount = (p: KnnParams): number => Math.ceil(p.queries.count / p.queriesPerUnit)

/** Most queries per unit for this k. */
const maxQueriesPerUnit = (k: number): number =>
  Math.min(MAX_QUERIES_PER_UNIT, Math.floor(MAX_NEIGHBOURS_PER_UNIT / k))

/** A content reference from the network; the shared reader's ProtocolError becomes a ValidationError. */
function readDataset(raw: unknown, dim: number, k: number): ContentRef {
  const field = 'input.dataset'
  let ref: ContentRef
  try {
    ref = parseContentRef(readRecord(raw, field, ['root', 'size']), field)
  } catch (err) {
    if (err instanceof ProtocolError) throw new ValidationError(field, err.message, { cause: err })
    throw err
  }
  if (ref.size % dim !== 0 || ref.size < dim * k)
    throw new ValidationError(`${field}.size`, 'must be a multiple of input.dim of at least input.k rows')
  return ref
}

/** Bytes one query reads: the dataset's size when its manifest is at hand, else the nominal size. */
function queryBytes(params: KnnParams, resource?: PlanResource): number {
  const bytes = resource?.(params.dataset)
  if (bytes === undefined) return NOMINAL_DATASET_BYTES
  try {
    return decodeManifest(bytes).size
  } catch (err) {
    if (err instanceof ProtocolError) return NOMINAL_DATASET_BYTES
    throw err
  }
}

/** The size of the dataset `resource` holds the manifest of; ValidationErrors name the param. */
function datasetSize(params: KnnParams, resource?: PlanResource): number {
  const bytes = resource?.(params.dataset)
  if (bytes === undefined)
    throw new ValidationError(
      'params.dataset',
      `no dataset with root ${params.dataset}; upload it with POST /v1/datasets`,
    )
  let size: number
  try {
    size = decodeManifest(bytes).size
  } catch (err) {
    if (err instanceof ProtocolError)
      throw new ValidationError('params.dataset', 'does not name a dataset manifest', { cause: err })
    throw err
  }
  if (size % params.dim !== 0)
    throw new ValidationError('params.dim', `must divide the dataset's size, ${size} bytes`)
  const rows = size / params.dim
  if (params.k > rows)
    throw new ValidationError('params.k', `must be at most the dataset's ${rows} rows of ${params.dim} bytes`)
  return size
}

const paramsSchema = Closed({
  dataset: T.String({
    pattern: HASH_PATTERN,
    description: 'Root of a dataset uploaded with POST /v1/datasets: rows of dim unsigned bytes',
    'x-message': 'must be the root of an uploaded dataset (64 lowercase hex digits)',
  }),
  dim: T.Integer({ minimum: 1, maximum: MAX_DIM, description: 'Bytes per row; divides the size' }),
  k: T.Integer({ minimum: 1, maximum: MAX_K, description: 'Neighbours per query, at most the rows' }),
  queries: Closed(
    {
      count: T.Integer({ minimum: 1, maximum: MAX_QUERIES }),
      seed: T.Optional(T.Integer({ minimum: 0, maximum: MAX_SEED, default: 0 })),
    },
    { description: 'Query j is dim bytes generated from (seed, j)' },
  ),
  queriesPerUnit: T.Optional(
    T.Integer({
      minimum: 1,
      maximum: MAX_QUERIES_PER_UNIT,
      description: `Chosen by the planner when absent; at most ${MAX_NEIGHBOURS_PER_UNIT} / k, and at most ${MAX_UNITS} units per job`,
    }),
  ),
})

/** What a submitter sends. */
export type KnnRequest = Static<typeof paramsSchema>

export const knn: JobType<KnnParams, KnnInput, KnnOutput, KnnResult, KnnRequest> = {
  name: 'knn',
  version: 1,
  description:
    'Exact k-nearest-neighbour search (squared L2 over bytes) of generated queries in an uploaded dataset (POST /v1/datasets).',
  paramsSchema,
  maxUnits: MAX_UNITS,

  completeParams(given) {
    const { dataset, dim, k } = given
    const queries = { count: given.queries.count, seed: given.queries.seed ?? 0 }
    const most = maxQueriesPerUnit(k)
    if (given.queriesPerUnit !== undefined && given.queriesPerUnit > most)
      throw new ValidationError('params.queriesPerUnit', `must be at most ${most} for k = ${k}`)
    const queriesPerUnit =
      given.queriesPerUnit ??
      Math.min(most, Math.max(DEFAULT_QUERIES_PER_UNIT, Math.ceil(queries.count / MAX_UNITS)))
    const params = { dataset, dim, k, queries, queriesPerUnit }
    if (unitCount(params) > MAX_UNITS) {
      throw new ValidationError(
        'params.queriesPerUnit',
        `gives ${unitCount(params)} units, more than ${MAX_UNITS}; use at least ${Math.ceil(queries.count / MAX_UNITS)}`,
      )
    }
    return params
  },

  estimateCost(params, resource) {
    return {
      units: unitCount(params),
      unitSeconds:
        queryBytes(params, resource) *
        Math.min(params.queriesPerUnit, params.queries.count) *
        SECONDS_PER_BYTE,
    }
  },

  granularity: {
    param: 'queriesPerUnit',
    resize(params, unitSeconds, resource) {
      const least = Math.ceil(params.queries.count / MAX_UNITS)
      const wanted = Math.round(unitSeconds / (queryBytes(params, resource) * SECONDS_PER_BYTE))
      const most = Math.min(maxQueriesPerUnit(params.k), params.queries.count)
      return { ...params, queriesPerUnit: Math.max(1, least, Math.min(most, wanted)) }
    },
  },

  planResources: (params) => [params.dataset],

  split(params, resource) {
    const dataset = { root: params.dataset, size: datasetSize(params, resource) }
    const { dim, k, queriesPerUnit } = params
    const { count, seed } = params.queries
    const inputs: KnnInput[] = []
    for (let first = 0; first < count; first += queriesPerUnit)
      inputs.push({ dataset, dim, k, seed, first, count: Math.min(queriesPerUnit, count - first) })
    return inputs
  },

  parseInput(raw) {
    const rec = readRecord(raw, 'input', ['dataset', 'dim', 'k', 'seed', 'first', 'count'])
    const dim = readInt(rec, 'input', 'dim', 1, MAX_DIM)
    const k = readInt(rec, 'input', 'k', 1, MAX_K)
    const dataset = readDataset(rec['dataset'], dim, k)
    const seed = readInt(rec, 'input', 'seed', 0, MAX_SEED)
    const first = readInt(rec, 'input', 'first', 0, MAX_QUERIES - 1)
    const count = readInt(rec, 'input', 'count', 1, Math.min(maxQueriesPerUnit(k), MAX_QUERIES - first))
    return { dataset, dim, k, seed, first, count }
  },

  content: (input) => [input.dataset],

  run(input, ctx) {
    const { root, size } = input.dataset
    const data = ctx.content?.(root)
    if (data === undefined) throw new UnrecoverableError(`dataset ${root} was not given to the kernel`)
    if (data.length !== size)
      throw new UnrecoverableError(`dataset ${root} is ${data.length} bytes; the unit names ${size}`)
    return searchKnn({ ...input, data }, hooksOf<never>(ctx))
  },

  parseOutput(raw) {
    const rec = readRecord(raw, 'output', ['ids', 'dists'])
    const ids = readIntList(rec, 'output', 'ids', MAX_NEIGHBOURS_PER_UNIT, 0, MAX_CONTENT_BYTES - 1)
    const dists = readIntList(rec, 'output', 'dists', MAX_NEIGHBOURS_PER_UNIT, 0, MAX_DIST)
    if (ids.length === 0) throw new ValidationError('output.ids', 'must not be empty')
    if (dists.length !== ids.length)
      throw new ValidationError('output.dists', `must have as many items as output.ids (${ids.length})`)
    return { ids, dists }
  },

  merge(params, outputs) {
    const expected = unitCount(params)
    if (outputs.length !== expected)
      throw new ValidationError('outputs', `expected ${expected} unit outputs, got ${outputs.length}`)
    const { k, queriesPerUnit } = params
    const { count } = params.queries
    const ids: number[][] = []
    const dists: number[][] = []
    outputs.forEach((o, u) => {
      const n = Math.min(queriesPerUnit, count - u * queriesPerUnit) * k
      if (o.ids.length !== n || o.dists.length !== n)
        throw new ValidationError(`outputs[${u}]`, `must hold ${n} neighbours, got ${o.ids.length}`)
      for (let i = 0; i < n; i += k) {
        ids.push(o.ids.slice(i, i + k))
        dists.push(o.dists.slice(i, i + k))
      }
    })
    return { queries: count, k, ids, dists }
  },
}
