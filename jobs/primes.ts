// Job type `primes@1`: count the primes in [from, to), one unit per slice of `unitSize` numbers.
import { ValidationError } from '../shared/errors.js'
import type { JobType } from '../shared/job-type.js'
import { countPrimes, SIEVE_LIMIT } from './primes-sieve.js'
import { readInt, readRecord } from './validate.js'
import { hooksOf } from './kernel-hooks.js'
import { Closed, T, type Static } from './schema.js'

export interface PrimesParams {
  from: number
  to: number
  /** Numbers per unit (the default is filled in by completeParams). */
  unitSize: number
}

export interface PrimesInput {
  from: number
  to: number
}

export interface PrimesOutput {
  count: number
}

export interface PrimesResult {
  count: number
  from: number
  to: number
}

const MAX_UNITS = 100_000
const MIN_UNIT_SIZE = 1000
const MAX_UNIT_SIZE = 1e9
/** About 0.05 s of sieving per unit on a desktop core. */
const DEFAULT_UNIT_SIZE = 1e7
/** Measured: about 1.5 ns per number below 10^9, up to 5 ns per number near 10^12. */
const SECONDS_PER_NUMBER = 3e-9

function unitCount(p: PrimesParams): number {
  return Math.ceil((p.to - p.from) / p.unitSize)
}

const paramsSchema = Closed({
  from: T.Optional(
    T.Integer({ minimum: 0, maximum: SIEVE_LIMIT - 1, default: 0, description: 'First number' }),
  ),
  to: T.Integer({ minimum: 1, maximum: SIEVE_LIMIT, description: 'End of the range (excluded)' }),
  unitSize: T.Optional(
    T.Integer({
      minimum: MIN_UNIT_SIZE,
      maximum: MAX_UNIT_SIZE,
      description: `Numbers per unit; chosen by the planner when absent; at most ${MAX_UNITS} units per job`,
    }),
  ),
})

/** What a submitter sends. */
export type PrimesRequest = Static<typeof paramsSchema>

export const primes: JobType<PrimesParams, PrimesInput, PrimesOutput, PrimesResult, PrimesRequest> = {
  name: 'primes',
  version: 1,
  description: 'Count the primes in [from, to) with a segmented sieve of Eratosthenes.',
  paramsSchema,
  maxUnits: MAX_UNITS,

  completeParams(given) {
    const to = given.to
    const from = given.from ?? 0
    if (from >= to) throw new ValidationError('params.from', 'must be less than params.to')
    const range = to - from
    const unitSize = given.unitSize ?? Math.max(DEFAULT_UNIT_SIZE, Math.ceil(range / MAX_UNITS))
    const params = { from, to, unitSize }
    if (unitCount(params) > MAX_UNITS) {
      throw new ValidationError(
        'params.unitSize',
        `gives ${unitCount(params)} units, more than ${MAX_UNITS}; use at least ${Math.ceil(range / MAX_UNITS)}`,
      )
    }
    return params
  },

  estimateCost(params) {
    return {
      units: unitCount(params),
      unitSeconds: Math.min(params.unitSize, params.to - params.from) * SECONDS_PER_NUMBER,
    }
  },

  granularity: {
    param: 'unitSize',
    resize(params, unitSeconds) {
      const range = params.to - params.from
      const least = Math.max(MIN_UNIT_SIZE, Math.ceil(range / MAX_UNITS))
      // Equal slices: the unit count nearest the wanted size, then the size that makes that count.
      const units = Math.max(1, Math.round((range * SECONDS_PER_NUMBER) / unitSeconds))
      return { ...params, unitSize: Math.max(least, Math.min(MAX_UNIT_SIZE, Math.ceil(range / units))) }
    },
  },

  split(params) {
    const inputs: PrimesInput[] = []
    for (let from = params.from; from < params.to; from += params.unitSize) {
      inputs.push({ from, to: Math.min(params.to, from + params.unitSize) })
    }
    return inputs
  },

  parseInput(raw) {
    const rec = readRecord(raw, 'input', ['from', 'to'])
    const from = readInt(rec, 'input', 'from', 0, SIEVE_LIMIT - 1)
    const to = readInt(rec, 'input', 'to', 1, SIEVE_LIMIT)
    if (from >= to) throw new ValidationError('input.from', 'must be less than input.to')
    if (to - from > MAX_UNIT_SIZE)
      throw new ValidationError('input.to', `must be within ${MAX_UNIT_SIZE} of input.from`)
    return { from, to }
  },

  run(input, ctx) {
    // Checkpoints once per 128 Ki-odd-number segment (the host throttles what it keeps).
    return {
      count: countPrimes(input.from, input.to, hooksOf(ctx)),
    }
  },

  parseOutput(raw) {
    const rec = readRecord(raw, 'output', ['count'])
    return { count: readInt(rec, 'output', 'count', 0, MAX_UNIT_SIZE) }
  },

  merge(params, outputs) {
    const expected = unitCount(params)
    if (outputs.length !== expected) {
      throw new ValidationError('outputs', `expected ${expected} unit outputs, got ${outputs.length}`)
    }
    let count = 0
    for (const o of outputs) count += o.count
    return { count, from: params.from, to: params.to }
  },
}
