// The small-units benchmark's bookkeeping, without a cluster: the e2e baseline follows the units the
// coordinator planned (and refuses to run when they differ from the job type's split), and the
// goals table compares each figure with its goal.
import test from 'ava'
import type { JobRecord } from '../coordinator/index.js'
import { plannedUnits } from '../bench/e2e-baseline.js'
import { goals, goalsTable } from '../bench/goals.js'
import type { LeaseLatencyResult, LatencySummary } from '../bench/lease-latency.js'

function record(type: string, params: unknown, unitsTotal: number): JobRecord {
  return {
    id: 'job-1',
    type,
    version: 1,
    kind: `${type}@1`,
    params,
    quorum: 2,
    maxReplicas: 4,
    minCredibility: 0.9999,
    spotCheckRate: 1,
    priority: 0,
    owner: 'anonymous',
    state: 'completed',
    createdAt: 0,
    updatedAt: 0,
    unitsTotal,
    unitsValidated: unitsTotal,
    unitsFailed: 0,
    replicasExtra: 0,
    planned: true,
    generation: 0,
    revisions: [],
  }
}

test('bench goals - the baseline computes the units split from the params the coordinator stored', (t) => {
  const units = plannedUnits(record('primes', { from: 0, to: 30_000, unitSize: 10_000 }, 3))
  t.is(units.kind, 'primes@1')
  t.deepEqual(units.inputs, [
    { from: 0, to: 10_000 },
    { from: 10_000, to: 20_000 },
    { from: 20_000, to: 30_000 },
  ])
})

test('bench goals - a job planned into other units than its split is refused', (t) => {
  const err = t.throws(() => plannedUnits(record('nqueens', { n: 8, depth: 2 }, 5)))
  t.regex(err.message, /planned into 5 units, but nqueens@1's split .* gives 42/)
})

function latency(p50Ms: number, p99Ms: number): LatencySummary {
  return {
    count: 100,
    p50Ms,
    p99Ms,
    maxMs: p99Ms,
    verifyP50Ms: 0.4,
    empty: { rate: 0, leases: 0, none: 0 },
    failed: 0,
    leasesPerSecond: 80,
  }
}

test('bench goals - each figure is compared with its goal, and a section not run shows a dash', (t) => {
  const l: LeaseLatencyResult = {
    identities: 10,
    perIdentityPerSecond: 8,
    jobUnits: 10_000,
    workers: [{ threads: 1 }],
    phases: [
      { phase: 'idle', unitsRunMeanwhile: 0, latency: latency(4, 30) },
      { phase: 'busy', unitsRunMeanwhile: 50, latency: latency(6, 20) },
    ],
  }
  const byMeasure = new Map(goals({ latency: l }).map((g) => [g.measure, g]))
  const met = (m: string): boolean | undefined => {
    const g = byMeasure.get(m)
    return g?.now === undefined ? undefined : g.goal?.met(g.now)
  }
  t.true(met('lease latency p50 ms (idle coordinator)'))
  t.false(met('lease latency p99 ms (idle coordinator)'))
  t.false(met('lease latency p50 ms (daemons busy)'))
  t.true(met('lease latency p99 ms (daemons busy)'))
  t.is(met('nqueens n=14, platform / baseline'), undefined)
  const table = goalsTable({ latency: l })
  t.regex(table, /\| lease latency p99 ms \(idle coordinator\) +\| ≤ 25 +\| 30\.00 +\| no +\|/)
  t.regex(table, /\| nqueens n=14, platform \/ baseline +\| ≤ 1\.3 +\| - +\| - +\|/)
})
