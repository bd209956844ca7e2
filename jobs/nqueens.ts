// Job type `nqueens@1`: count the solutions of the n-queens problem, one unit per valid placement
// of the first `depth` rows.
import { ValidationError } from '../shared/errors.js'
import type { JobType } from '../shared/job-type.js'
import { countCompletions, placePrefix, validPrefixes } from './nqueens-search.js'
import { readInt, readIntList, readRecord } from './validate.js'
import { hooksOf } from './kernel-hooks.js'
import { Closed, T, type Static } from './schema.js'

export interface NQueensParams {
  n: number
  /** Rows placed by `split` (the default is filled in by completeParams). */
  depth: number
}

export interface NQueensInput {
  n: number
  /** Columns of the queens in the first rows; no two attack each other. */
  prefix: number[]
}

export interface NQueensOutput {
  solutions: number
}

export interface NQueensResult {
  n: number
  solutions: number
}

/** Q(18) = 666,090,624 is a safe integer and about 20 minutes of single-core work. */
const MAX_N = 18
const MAX_DEPTH = 4
/** n = 18 with depth 4 gives 36,264 units. */
const MAX_UNITS = 100_000
/** Solutions of one unit never exceed Q(18). */
const MAX_SOLUTIONS = 666_090_624
/** Measured: Q(14) takes about 0.6 s, and each further n multiplies the work by about 6.5. */
const Q14_SECONDS = 0.6
const GROWTH = 6.5

const totalSeconds = (n: number): number => Q14_SECONDS * GROWTH ** (n - 14)

function defaultDepth(n: number): number {
  return n <= 6 ? 1 : n <= 13 ? 2 : 3
}

/** The unit prefixes; a board with no valid prefix (n = 2, 3) gets one unit that finds nothing. */
function prefixes(params: NQueensParams): number[][] {
  const found = validPrefixes(params.n, params.depth)
  return found.length > 0 ? found : [[]]
}

const paramsSchema = Closed({
  n: T.Integer({ minimum: 1, maximum: MAX_N, description: 'Board size' }),
  depth: T.Optional(
    T.Integer({
      minimum: 0,
      maximum: MAX_DEPTH,
      description: 'Rows placed per unit (at most n); chosen by the planner when absent',
    }),
  ),
})

/** What a submitter sends. */
export type NQueensRequest = Static<typeof paramsSchema>

export const nqueens: JobType<NQueensParams, NQueensInput, NQueensOutput, NQueensResult, NQueensRequest> = {
  name: 'nqueens',
  version: 1,
  description: 'Count the ways to place n non-attacking queens on an n×n board.',
  paramsSchema,
  maxUnits: MAX_UNITS,

  completeParams(given) {
    const { n } = given
    if (given.depth !== undefined && given.depth > n)
      throw new ValidationError('params.depth', `must be at most params.n (${n})`)
    return { n, depth: given.depth ?? defaultDepth(n) }
  },

  estimateCost(params) {
    const units = prefixes(params).length
    return { units, unitSeconds: totalSeconds(params.n) / units }
  },

  granularity: {
    param: 'depth',
    resize(params, unitSeconds) {
      // Each depth multiplies the units by at most n: try them all, keep the nearest by ratio.
      let best = params
      let distance = Infinity
      for (let depth = 0; depth <= Math.min(params.n, MAX_DEPTH); depth++) {
        const units = validPrefixes(params.n, depth).length
        const d = Math.abs(Math.log(totalSeconds(params.n) / Math.max(1, units) / unitSeconds))
        if (units <= MAX_UNITS && d < distance) {
          best = { n: params.n, depth }
          distance = d
        }
      }
      return best
    },
  },

  split(params) {
    return prefixes(params).map((prefix) => ({ n: params.n, prefix }))
  },

  parseInput(raw) {
    const rec = readRecord(raw, 'input', ['n', 'prefix'])
    const n = readInt(rec, 'input', 'n', 1, MAX_N)
    const prefix = readIntList(rec, 'input', 'prefix', Math.min(n, MAX_DEPTH), 0, n - 1)
    if (placePrefix(n, prefix) === undefined) {
      throw new ValidationError('input.prefix', 'places two queens that attack each other')
    }
    return { n, prefix }
  },

  run(input, ctx) {
    return {
      solutions: countCompletions(input.n, input.prefix, hooksOf(ctx)),
    }
  },

  parseOutput(raw) {
    const rec = readRecord(raw, 'output', ['solutions'])
    return { solutions: readInt(rec, 'output', 'solutions', 0, MAX_SOLUTIONS) }
  },

  merge(params, outputs) {
    const expected = prefixes(params).length
    if (outputs.length !== expected) {
      throw new ValidationError('outputs', `expected ${expected} unit outputs, got ${outputs.length}`)
    }
    let solutions = 0
    for (const o of outputs) solutions += o.solutions
    return { n: params.n, solutions }
  },
}
