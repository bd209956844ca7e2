// Planner: the unit size chosen from the job type's estimate, reported speeds and threads online.
import test from 'ava'
import { parseJobRequest } from '../coordinator/job-request.js'
import { resolveTuning } from '../coordinator/options.js'
import { choosePlan, sizeGiven, type PlanCapacity } from '../coordinator/planner/choose-plan.js'
import { findJobType, knn, nqueens, primes } from '../jobs/index.js'
import { CHUNK_BYTES, encodeManifest, ValidationError, type AnyJobType } from '../shared/index.js'
import { parseParams } from '../coordinator/schema/index.js'

const POLICY = { unitSeconds: 3, minUnitSeconds: 0.05, unitsPerThread: 3 }
const EIGHT: PlanCapacity = { threads: 8, quorum: 2 }

const plan = (t: AnyJobType, raw: unknown, capacity = EIGHT, policy = POLICY) =>
  choosePlan(t, parseParams(t, raw), sizeGiven(t, raw), policy, capacity)

test('planner - a large job gets units of the target time from the estimate', (t) => {
  // 10^12 numbers at 3 ns: 3,000 s of work, 1,000 units of 3 s.
  const p = plan(primes, { to: 1e12 })
  t.like(p.view, { by: 'target', unitSeconds: 3, speedFactor: 1 })
  t.is(p.cost.units, 1000)
  t.like(p.params, { unitSize: 1e9 })
})

test('planner - reported speeds scale the units: slower workers get smaller units, faster ones larger', (t) => {
  const p = plan(primes, { to: 1e12 }, { ...EIGHT, speedFactor: 2 })
  t.like(p.view, { by: 'target', unitSeconds: 3, speedFactor: 2 })
  t.is(p.cost.units, 2000)
  // Twice as fast, at a 0.3 s target: 10^10 numbers (30 s estimated) in 50 units of 0.6 s estimated.
  const quick = { ...POLICY, unitSeconds: 0.3 }
  const fast = plan(primes, { to: 1e10 }, { threads: 1, quorum: 2, speedFactor: 0.5 }, quick)
  t.is(fast.cost.units, 50)
  t.is(fast.view.unitSeconds, 0.3)
  t.is(plan(primes, { to: 1e10 }, { threads: 1, quorum: 2 }, quick).cost.units, 100)
})

test('planner - a reported speed factor is trusted within bounds only', (t) => {
  const p = plan(primes, { to: 1e11 }, { ...EIGHT, speedFactor: 1e6 })
  t.is(p.view.speedFactor, 16)
  t.is(p.cost.units, 1600)
})

test("planner - the submitter's target time is used instead of the coordinator's", (t) => {
  const p = plan(primes, { to: 1e12 }, EIGHT, { ...POLICY, unitSeconds: 0.3 })
  t.is(p.cost.units, 10_000)
  t.like(p.view, { by: 'target', unitSeconds: 0.3 })
})

test('planner - an explicit unitSize or depth always wins', (t) => {
  const p = plan(primes, { to: 1e11, unitSize: 1e7 }, { ...EIGHT, speedFactor: 3 })
  t.like(p.params, { unitSize: 1e7 })
  t.is(p.cost.units, 10_000)
  t.like(p.view, { by: 'explicit', speedFactor: 3 })
  const q = plan(nqueens, { n: 14, depth: 3 })
  t.like(q.params, { depth: 3 })
  t.is(q.cost.units, 1364)
  t.is(q.view.by, 'explicit')
})

test('planner - a small job spreads over the online threads, per quorum', (t) => {
  // 3 s of work: one unit at the target, but 3 × 8 threads / quorum 2 = 12 units keep them busy.
  const p = plan(primes, { to: 1e9 })
  t.is(p.view.by, 'spread')
  t.is(p.cost.units, 12)
  t.is(p.view.unitSeconds, 0.25)
  const more = plan(primes, { to: 1e9 }, { threads: 16, quorum: 1 })
  t.is(more.cost.units, 48)
})

test('planner - units are never smaller than the floor unless the whole job is', (t) => {
  // n = 14 is about 0.6 s of work: depth 1 (14 units of ~0.04 s) is the size nearest the 0.05 s floor.
  const q = plan(nqueens, { n: 14 })
  t.like(q.params, { depth: 1 })
  t.is(q.cost.units, 14)
  t.is(q.view.by, 'floor')
  const tiny = plan(nqueens, { n: 9 })
  t.like(tiny.params, { depth: 0 })
  t.is(tiny.cost.units, 1)
  const crowd = plan(primes, { to: 1e9 }, { threads: 10_000, quorum: 1 })
  t.is(crowd.view.by, 'floor')
  t.is(crowd.cost.units, 60)
})

test('planner - nqueens picks the depth whose units are nearest the target', (t) => {
  const q = plan(nqueens, { n: 18 })
  // Q(18) is about 18 minutes estimated: depth 2 (~4.5 s units) is nearer 3 s than depth 3 (~0.3 s).
  t.like(q.params, { depth: 2 })
  t.is(q.view.by, 'target')
})

test("planner - knn sizes units from the dataset's real size when its manifest is at hand", (t) => {
  const root = 'ab'.repeat(32)
  const raw = { dataset: root, dim: 64, k: 4, queries: { count: 10_000 } }
  const params = parseParams(knn, raw)
  const manifest = encodeManifest({
    type: 'manifest',
    v: 1,
    size: 16 * 1024 * 1024,
    chunkSize: CHUNK_BYTES,
    chunks: new Uint8Array(256 * 32),
  })
  const small = choosePlan(knn, params, false, POLICY, EIGHT, (h) => (h === root ? manifest : undefined))
  const nominal = choosePlan(knn, params, false, POLICY, EIGHT)
  t.like(small.params, { queriesPerUnit: Math.round(3 / (16 * 1024 * 1024 * 1.7e-9)) })
  t.true(small.cost.units < nominal.cost.units)
})

test('planner - job types without a size the planner may choose keep theirs', (t) => {
  const wasm = findJobType('wasm')!
  const p = plan(wasm, { module: 'cd'.repeat(32), input: { range: { from: 0, to: 100, step: 10 } } })
  t.is(p.view.by, 'fixed')
  t.is(p.cost.units, 10)
})

test('planner - sizeGiven sees only the size param the submitter sent', (t) => {
  t.true(sizeGiven(primes, { to: 5, unitSize: 1000 }))
  t.false(sizeGiven(primes, { to: 5 }))
  t.true(sizeGiven(nqueens, { n: 8, depth: 0 }))
  t.false(sizeGiven(nqueens, { n: 8 }))
  t.false(sizeGiven(nqueens, undefined))
})

const DEFAULTS = { quorum: 2, minCredibility: 0.9999, spotCheckRate: 0.1, minUnitSeconds: 0.05 }
const request = (body: unknown) => parseJobRequest(body, findJobType, DEFAULTS)

test('planner - a job request carries its parsed params, whether the size was given, and plan.unitSeconds', (t) => {
  const r = request({ type: 'nqueens', params: { n: 12 }, plan: { unitSeconds: 0.5 } })
  t.deepEqual(r.params, { n: 12, depth: 2 })
  t.false(r.sizeGiven)
  t.is(r.unitSeconds, 0.5)
  t.true(request({ type: 'nqueens', params: { n: 12, depth: 2 } }).sizeGiven)
  t.is(request({ type: 'primes', params: { to: 10 } }).unitSeconds, undefined)
})

test('planner - a bad plan field is refused, naming the field', (t) => {
  const field = (plan: unknown) =>
    t.throws(() => request({ type: 'primes', params: { to: 10 }, plan }), { instanceOf: ValidationError })
      ?.field
  t.is(field([]), 'plan')
  t.is(field({ unitSeconds: 0.01 }), 'plan.unitSeconds')
  t.is(field({ unitSeconds: 4000 }), 'plan.unitSeconds')
  t.is(field({ unitSeconds: '3' }), 'plan.unitSeconds')
  t.is(field({ units: 3 }), 'plan.units')
})

test('planner - its coordinator options are checked, naming the option', (t) => {
  const message = (given: Record<string, unknown>) => t.throws(() => resolveTuning(given))?.message ?? ''
  t.regex(message({ plannerUnitSeconds: 0 }), /^plannerUnitSeconds must be a number in/)
  t.regex(message({ plannerMinUnitSeconds: 0 }), /^plannerMinUnitSeconds must be a number in/)
  t.regex(message({ plannerUnitsPerThread: 0 }), /^plannerUnitsPerThread must be a number in/)
  t.regex(message({ plannerThreads: 0.5 }), /^plannerThreads must be an integer in/)
  t.regex(message({ plannerThreadsPerWorker: 0 }), /^plannerThreadsPerWorker must be an integer in/)
})
