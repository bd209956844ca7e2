// The summary every run ends with: each goal of "small units cost almost nothing" next to what this
// run measured (a dash for a section not run).
import type { E2eRow } from './e2e.js'
import type { LeaseLatencyResult } from './lease-latency.js'
import type { OverheadResult } from './overhead.js'
import { fixed, table } from './report.js'
import type { ScaleResult } from './scale.js'
import type { ThroughputResult } from './throughput.js'

export interface GoalInputs {
  overhead?: OverheadResult | undefined
  throughput?: ThroughputResult | undefined
  latency?: LeaseLatencyResult | undefined
  e2e?: readonly E2eRow[] | undefined
  scale?: ScaleResult | undefined
}

interface Goal {
  measure: string
  /** The goal as written, and whether a figure meets it; undefined when no goal is set. */
  goal?: { text: string; met: (x: number) => boolean }
  /** This run's figure, undefined when its section did not run. */
  now: number | undefined
  digits: number
}

const atMost = (limit: number): Goal['goal'] => ({ text: `≤ ${limit}`, met: (x) => x <= limit })
const atLeast = (limit: number): Goal['goal'] => ({ text: `≥ ${limit}`, met: (x) => x >= limit })
const within = (lo: number, hi: number): Goal['goal'] => ({
  text: `${lo} – ${hi}`,
  met: (x) => x >= lo && x <= hi,
})

/** `a / b` when both are there. */
const ratio = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined || b === undefined || b === 0 ? undefined : a / b

/** Issue 16's goals: the coordinator's cost per unit does not grow with the crowd, and so on. */
function scaleGoals(s: ScaleResult | undefined): Goal[] {
  const run = (volunteers: number, coordinators: number) =>
    s?.runs.find((r) => r.volunteers === volunteers && r.coordinators === coordinators)
  const overlay = (peers: number): number | undefined =>
    s?.overlay.find((o) => o.peers === peers)?.bytesPerPeerPerSecond
  return [
    {
      measure: 'coordinator CPU per unit, 1,000 / 10 volunteers',
      goal: within(0.8, 1.2),
      now: ratio(run(1000, 1)?.coordinatorCpuMsPerUnit, run(10, 1)?.coordinatorCpuMsPerUnit),
      digits: 2,
    },
    {
      measure: 'validated units/s, two / one coordinators',
      goal: atLeast(1.8),
      now: ratio(run(1000, 2)?.unitsPerSecond, run(1000, 1)?.unitsPerSecond),
      digits: 2,
    },
    {
      measure: 'discovery bytes per peer, 1,000 / 100 peers',
      goal: atMost(2),
      now: ratio(overlay(1000), overlay(100)),
      digits: 2,
    },
  ]
}

export function goals(g: GoalInputs): Goal[] {
  const overhead = (ms: number): number | undefined => g.overhead?.rows.find((r) => r.targetMs === ms)?.ratio
  const idle = g.latency?.phases.find((p) => p.phase === 'idle')?.latency
  const busy = g.latency?.phases.find((p) => p.phase === 'busy')?.latency
  const e2e = (type: string): number | undefined => g.e2e?.find((r) => r.kind.startsWith(`${type}@`))?.ratio
  return [
    { measure: 'overhead ratio, 1 ms units (quorum 1)', goal: atMost(1.5), now: overhead(1), digits: 2 },
    { measure: 'overhead ratio, 10 ms units (quorum 1)', goal: atMost(1.05), now: overhead(10), digits: 2 },
    { measure: 'overhead ratio, 100 ms units (quorum 1)', goal: atMost(1.02), now: overhead(100), digits: 2 },
    {
      measure: 'validated units/s, tiny units at quorum 2',
      goal: atLeast(2000),
      now: g.throughput?.unitsPerSecond,
      digits: 0,
    },
    { measure: 'lease latency p50 ms (idle coordinator)', goal: atMost(5), now: idle?.p50Ms, digits: 2 },
    { measure: 'lease latency p99 ms (idle coordinator)', goal: atMost(25), now: idle?.p99Ms, digits: 2 },
    { measure: 'lease latency p50 ms (daemons busy)', goal: atMost(5), now: busy?.p50Ms, digits: 2 },
    { measure: 'lease latency p99 ms (daemons busy)', goal: atMost(25), now: busy?.p99Ms, digits: 2 },
    { measure: 'nqueens n=14, platform / baseline', goal: atMost(1.3), now: e2e('nqueens'), digits: 2 },
    { measure: 'primes to=10^9, platform / baseline', goal: atMost(1.3), now: e2e('primes'), digits: 2 },
    ...scaleGoals(g.scale),
  ]
}

export function goalsTable(g: GoalInputs): string {
  return table(
    ['measure', 'goal', 'now', 'met'],
    goals(g).map((x) => [
      x.measure,
      x.goal?.text ?? 'not set',
      x.now === undefined ? '-' : fixed(x.now, x.digits),
      x.now === undefined || x.goal === undefined ? '-' : x.goal.met(x.now) ? 'yes' : 'no',
    ]),
  )
}
