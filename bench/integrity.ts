// Integrity: how many wrong results the coordinator accepts when some volunteers cheat, what the
// checking costs, and how fast cheaters are caught. Each scenario is a fresh coordinator (real
// Redis, NATS, sign-up, validator) with the coordinator's default checks, a crowd of H honest and S
// saboteur identities simulated in this process (integrity-crowd.ts), and one `primes` job of tiny
// units whose true outputs the benchmark knows. Scenarios: an honest crowd, then for each saboteur
// share f, five saboteur strategies:
// - random:    each saboteur a wrong count of its own (independent cheaters);
// - colluding: every saboteur the same wrong count for a unit;
// - sybil:     colluding, in groups of k identities of one owner on one network (one /24);
// - turncoat:  colluding after `honestFor` honest results (earn trust, then cheat);
// - fast:      colluding, answering at once and asking for as much work as it may hold.
// The figures come from comparing what the coordinator validated with the truth (integrity-records.ts).
import { Redis } from 'ioredis'
import type { Counters } from '../coordinator/index.js'
import { builtinJobTypes } from '../jobs/index.js'
import { connect } from '../client/index.js'
import { encode, generateIdentity, sha256Hex, type Identity } from '../shared/index.js'
import { benchCoordinator, type Endpoints } from './cluster.js'
import { startCrowd, truthOf, type Behaviour, type CrowdMember } from './integrity-crowd.js'
import { createWatcher, type Watcher } from './integrity-records.js'
import { connectSimulated } from './integrity-signup.js'
import { integrityTuning, VOUCHED_HOSTS } from './integrity-tuning.js'
import { progress } from './log.js'
import { median, round, sleep } from './stats.js'

export const STRATEGIES = ['random', 'colluding', 'sybil', 'turncoat', 'fast'] as const
export type Strategy = 'honest' | (typeof STRATEGIES)[number]

export interface IntegrityOptions {
  endpoints: Endpoints
  /** Identities per scenario, honest and saboteurs together (at most 250). */
  identities: number
  /** Units of each scenario's job. */
  units: number
  /** Saboteur shares of the identities, each in (0, 1). */
  fractions: readonly number[]
  /** Identities per owner in the sybil strategy. */
  sybilGroup: number
  /** Honest results a turncoat returns before it cheats. */
  honestFor: number
  /** Simulated compute time per unit of every volunteer but the fast liars, ms. */
  computeMs: readonly [number, number]
  /** A scenario ends without its job completing after this long, or this long without progress. */
  timeoutMs: number
  stallMs: number
  /** Where a line per finished scenario goes. Default: the benchmark's progress lines (stderr). */
  progress?: (line: string) => void
}

export interface CatchFigures {
  /** Saboteurs that sent at least one wrong result. */
  lied: number
  /** Of those, how many the coordinator's records show as caught / marked invalid. */
  caught: number
  markedInvalid: number
  /** Medians over the caught ones: seconds from its first wrong result, wrong results sent by then. */
  caughtAfterS?: number
  caughtAfterResults?: number
  /** The same for the first invalid mark. */
  invalidAfterS?: number
  invalidAfterResults?: number
}

export interface ScenarioResult {
  strategy: Strategy
  /** Saboteur share f = S / (H + S). */
  f: number
  honest: number
  saboteurs: number
  units: number
  /** completed; failed (a unit found no quorum); stalled (no unit validated for `stallMs`); timed out. */
  state: 'completed' | 'failed' | 'stalled' | 'timed out'
  error?: string
  /** POST until the end state, s. */
  seconds: number
  /** Units validated at the end. */
  validated: number
  /** Units whose first validated output was wrong (accepted wrong, whatever happened later). */
  wrongAccepted: number
  /** Units validated with a wrong output at the end (after any backtracking). */
  wrongAtEnd: number
  /** Whether the job's result (the total count) is the true one; undefined when it did not complete. */
  resultRight?: boolean
  /** Accepted results of the whole crowd (spot checks included) per validated unit. */
  replicasPerUnit: number
  /** Results per unit over the half of the units validated last (steady state). */
  replicasLastHalf: number
  /** Wrong results the saboteurs had accepted (not refused) by the coordinator. */
  wrongResultsSent: number
  catching: CatchFigures
  /** Honest identities the records show as caught (false accusations). */
  honestCaught: number
  /** Units redone by backtracking: those that had been validated right, and the others. */
  honestRedone: number
  wrongRedone: number
  /** Coordinator counters at the end (all of them, for the JSON report). */
  counters: Counters
}

export interface IntegrityResult {
  identities: number
  units: number
  sybilGroup: number
  honestFor: number
  computeMs: readonly [number, number]
  /** Network options set for the scenario coordinators (empty when the coordinator has none). */
  networkOptions: string[]
  scenarios: ScenarioResult[]
}

const UNIT_SIZE = 1000
const POLL_MS = 200
/** After the job completed: until nothing is queued or leased (two polls in a row), at most this long. */
const DRAIN_MS = 3_000

interface Plan {
  strategy: Strategy
  f: number
}

function plans(fractions: readonly number[]): Plan[] {
  return [
    { strategy: 'honest', f: 0 },
    ...fractions.flatMap((f) => STRATEGIES.map((strategy) => ({ strategy, f }))),
  ]
}

function behaviourOf(strategy: Strategy, o: IntegrityOptions): Behaviour {
  const compute = o.computeMs
  switch (strategy) {
    case 'honest':
      return { lie: 'never', honestFor: 0, computeMs: compute, slots: 2 }
    case 'random':
      return { lie: 'random', honestFor: 0, computeMs: compute, slots: 2 }
    case 'colluding':
    case 'sybil':
      return { lie: 'forged', honestFor: 0, computeMs: compute, slots: 2 }
    case 'turncoat':
      return { lie: 'forged', honestFor: o.honestFor, computeMs: compute, slots: 2 }
    case 'fast':
      return { lie: 'forged', honestFor: 0, computeMs: [0, 0], slots: 16 }
  }
}

/** A network of its own for identity `i`: 198.18.i.10 (each in its own /24 of the benchmarking range). */
const ownAddress = (i: number): string => `198.18.${i}.10`
/** Member `m` of Sybil group `g`: all of a group in 198.19.g.0/24. */
const groupAddress = (g: number, m: number): string => `198.19.${g}.${m + 1}`

interface Member extends CrowdMember {
  address: string
  owner?: Identity
}

async function makeMembers(plan: Plan, o: IntegrityOptions): Promise<Omit<Member, 'nats'>[]> {
  const saboteurs = Math.round(plan.f * o.identities)
  const honest = o.identities - saboteurs
  const out: Omit<Member, 'nats'>[] = []
  for (let i = 0; i < honest; i++)
    out.push({
      identity: await generateIdentity(true),
      behaviour: behaviourOf('honest', o),
      saboteur: false,
      address: ownAddress(i),
    })
  const owners: Identity[] = []
  for (let s = 0; s < saboteurs; s++) {
    const sybil = plan.strategy === 'sybil'
    const g = Math.floor(s / o.sybilGroup)
    if (sybil && owners[g] === undefined) owners[g] = await generateIdentity(true)
    out.push({
      identity: await generateIdentity(true),
      behaviour: behaviourOf(plan.strategy, o),
      saboteur: true,
      address: sybil ? groupAddress(g, s % o.sybilGroup) : ownAddress(honest + s),
      ...(sybil ? { owner: owners[g]! } : {}),
    })
  }
  return out
}

function catchFigures(
  sent: { wrongAt: number[] }[],
  marks: { at: number | undefined }[],
): { count: number; afterS?: number; afterResults?: number } {
  const secs: number[] = []
  const results: number[] = []
  sent.forEach((s, i) => {
    const at = marks[i]?.at
    const first = s.wrongAt[0]
    if (at === undefined || first === undefined) return
    secs.push(Math.max(0, at - first) / 1000)
    results.push(s.wrongAt.filter((t) => t <= at).length)
  })
  if (secs.length === 0) return { count: 0 }
  return { count: secs.length, afterS: round(median(secs), 1), afterResults: median(results) }
}

async function runScenario(plan: Plan, o: IntegrityOptions): Promise<ScenarioResult> {
  const { endpoints } = o
  const { tuning } = integrityTuning()
  const label = `bench-integrity-${process.pid}-${Date.now().toString(36)}`
  const prefix = `${label}:`
  const coordinator = benchCoordinator(
    endpoints,
    { ...tuning, redisPrefix: prefix, subjectPrefix: label },
    await generateIdentity(true),
  )
  await coordinator.start()
  const redis = new Redis(endpoints.redisUrl, { maxRetriesPerRequest: 3 })
  const connected: Member[] = []
  let crowd: ReturnType<typeof startCrowd> | undefined
  try {
    const specs = await makeMembers(plan, o)
    for (const m of specs) {
      const signup =
        endpoints.natsAccountSeed === undefined
          ? undefined
          : { coordinatorUrl: coordinator.url, identity: m.identity, address: m.address, owner: m.owner }
      connected.push({ ...m, nats: await connectSimulated(endpoints.natsUrl, m.identity, signup) })
    }
    // The operator's own hosts: the first honest identities.
    await coordinator.store.vouch(
      specs
        .filter((m) => !m.saboteur)
        .slice(0, VOUCHED_HOSTS)
        .map((m) => m.identity.id),
    )
    // Truth: every unit's input as the job type splits it, its true count and output digest.
    const to = o.units * UNIT_SIZE
    const inputs = builtinJobTypes.get('primes@1')!.split({ from: 0, to, unitSize: UNIT_SIZE }) as {
      from: number
      to: number
    }[]
    const counts = inputs.map(truthOf)
    const truthTotal = counts.reduce((a, b) => a + b, 0)
    const digests = await Promise.all(counts.map((count) => sha256Hex(encode({ count }))))

    crowd = startCrowd(label, connected)
    const started = Date.now()
    const { id: jobId } = await connect({ url: coordinator.url }).submit({
      type: 'primes',
      params: { from: 0, to, unitSize: UNIT_SIZE },
    })
    const truth = new Map(digests.map((d, i) => [`${jobId}:${i}`, d]))
    const watcher: Watcher = createWatcher({
      redis,
      prefix,
      truth,
      identityIds: connected.map((m) => m.identity.id),
    })

    let state: ScenarioResult['state'] | undefined
    let error: string | undefined
    let completedAt: number | undefined
    let quiet = 0
    let lastValidated = 0
    let progressAt = started
    let resultRight: boolean | undefined
    while (state === undefined) {
      await sleep(POLL_MS)
      await watcher.poll()
      const t = Date.now()
      const job = await coordinator.store.getJob(jobId)
      const validated = [...watcher.units.values()].filter((u) => u.state === 'validated').length
      if (validated !== lastValidated) {
        lastValidated = validated
        progressAt = t
      }
      if (job?.state === 'failed' || job?.state === 'cancelled') {
        state = 'failed'
        error = job.error
      } else if (job?.state === 'completed') {
        completedAt ??= t
        resultRight = (job.result as { count?: unknown } | undefined)?.count === truthTotal
        quiet = validated === o.units && (await watcher.queued()) === 0 ? quiet + 1 : 0
        if (quiet >= 2 || t - completedAt > DRAIN_MS) state = 'completed'
      } else {
        completedAt = undefined
        quiet = 0
        if (t - progressAt > o.stallMs) state = 'stalled'
      }
      if (state === undefined && t - started > o.timeoutMs) state = 'timed out'
    }
    const seconds = round((Date.now() - started) / 1000, 1)
    const figures = crowd
    await crowd.stop()
    crowd = undefined
    await watcher.poll()
    return {
      strategy: plan.strategy,
      f: plan.f,
      honest: connected.filter((m) => !m.saboteur).length,
      saboteurs: connected.filter((m) => m.saboteur).length,
      units: o.units,
      state,
      ...(error === undefined ? {} : { error }),
      seconds,
      ...summarize(watcher, figures, truth),
      ...(resultRight === undefined || state !== 'completed' ? {} : { resultRight }),
      counters: { ...coordinator.counters },
    }
  } finally {
    await crowd?.stop()
    await Promise.allSettled(connected.filter((m) => !m.nats.isClosed()).map((m) => m.nats.close()))
    redis.disconnect()
    await coordinator.stop()
  }
}

type Summary = Pick<
  ScenarioResult,
  | 'validated'
  | 'wrongAccepted'
  | 'wrongAtEnd'
  | 'replicasPerUnit'
  | 'replicasLastHalf'
  | 'wrongResultsSent'
  | 'catching'
  | 'honestCaught'
  | 'honestRedone'
  | 'wrongRedone'
>

/** The scenario's figures from the records read and what the crowd sent. */
function summarize(
  watcher: Watcher,
  crowd: Pick<ReturnType<typeof startCrowd>, 'resultsByUnit' | 'volunteers'>,
  truth: ReadonlyMap<string, string>,
): Summary {
  const units = [...watcher.units.entries()]
  const validated = units.filter(([, u]) => u.state === 'validated')
  const resultsOf = (uid: string): number => crowd.resultsByUnit.get(uid) ?? 0
  const allResults = [...crowd.resultsByUnit.values()].reduce((a, b) => a + b, 0)
  // Steady state: the half of the units validated last (first validation, by poll time).
  const byTime = validated.sort((a, b) => (a[1].firstAt ?? 0) - (b[1].firstAt ?? 0))
  const lastHalf = byTime.slice(Math.floor(byTime.length / 2))
  const perUnit = (n: number, d: number): number => (d === 0 ? 0 : round(n / d, 2))
  const sabs = crowd.volunteers.filter((v) => v.saboteur)
  const liars = sabs.filter((v) => v.wrongAt.length > 0)
  const track = (id: string) => watcher.identities.get(id)
  const caught = catchFigures(
    liars,
    liars.map((v) => ({ at: track(v.id)?.caughtAt })),
  )
  const invalid = catchFigures(
    liars,
    liars.map((v) => ({ at: track(v.id)?.invalidAt })),
  )
  return {
    validated: validated.length,
    wrongAccepted: units.filter(([uid, u]) => u.firstDigest !== undefined && u.firstDigest !== truth.get(uid))
      .length,
    wrongAtEnd: validated.filter(([uid, u]) => u.digest !== truth.get(uid)).length,
    replicasPerUnit: perUnit(allResults, validated.length),
    replicasLastHalf: perUnit(
      lastHalf.reduce((a, [uid]) => a + resultsOf(uid), 0),
      lastHalf.length,
    ),
    wrongResultsSent: sabs.reduce((a, v) => a + v.wrongAt.length, 0),
    catching: {
      lied: liars.length,
      caught: caught.count,
      markedInvalid: invalid.count,
      ...(caught.afterS === undefined
        ? {}
        : { caughtAfterS: caught.afterS, caughtAfterResults: caught.afterResults }),
      ...(invalid.afterS === undefined
        ? {}
        : { invalidAfterS: invalid.afterS, invalidAfterResults: invalid.afterResults }),
    },
    honestCaught: crowd.volunteers.filter((v) => !v.saboteur && track(v.id)?.caughtAt !== undefined).length,
    honestRedone: units.reduce((a, [, u]) => a + u.redoneRight, 0),
    wrongRedone: units.reduce((a, [, u]) => a + u.redone - u.redoneRight, 0),
  }
}

export async function runIntegrity(o: IntegrityOptions): Promise<IntegrityResult> {
  if (!Number.isSafeInteger(o.identities) || o.identities < 2 || o.identities > 250)
    throw new Error('identities must be an integer from 2 to 250')
  for (const f of o.fractions)
    if (!(f > 0 && f < 1) || Math.round(f * o.identities) < 1)
      throw new Error(`saboteur share ${f} must be in (0, 1) and give at least one saboteur`)
  const { networkOptions } = integrityTuning()
  const scenarios: ScenarioResult[] = []
  const say = o.progress ?? progress
  for (const plan of plans(o.fractions)) {
    const r = await runScenario(plan, o)
    say(
      `integrity: ${plan.strategy} f=${plan.f}: ${r.state} in ${r.seconds} s, ` +
        `${r.wrongAccepted}/${r.validated} wrong accepted, ${r.replicasPerUnit} results/unit`,
    )
    scenarios.push(r)
  }
  return {
    identities: o.identities,
    units: o.units,
    sybilGroup: o.sybilGroup,
    honestFor: o.honestFor,
    computeMs: o.computeMs,
    networkOptions,
    scenarios,
  }
}

/** The section's settings: a full run (a few minutes on 2 cores) or `--quick` (what the tests run). */
export function integrityOptions(endpoints: Endpoints, quick: boolean): IntegrityOptions {
  return quick
    ? {
        endpoints,
        identities: 20,
        units: 40,
        fractions: [0.1, 0.3],
        sybilGroup: 3,
        honestFor: 1,
        computeMs: [2, 6],
        timeoutMs: 60_000,
        stallMs: 15_000,
      }
    : {
        endpoints,
        identities: 40,
        units: 500,
        fractions: [0.1, 0.3],
        sybilGroup: 4,
        honestFor: 10,
        computeMs: [10, 30],
        timeoutMs: 180_000,
        stallMs: 30_000,
      }
}
