// The simulated volunteers of the integrity benchmark: raw protocol clients (worker/coordinator-client)
// that ask for `primes` units, work out an output themselves and submit it signed, like a daemon but
// without piscina. Honest ones return the true count (computed in-process with the job's own sieve:
// units are 1000 numbers, some microseconds) after a simulated compute time; saboteurs return wrong
// counts as their behaviour says. Every volunteer records what it submitted, so the benchmark can
// compare it with what the coordinator accepted.
import type { NatsConnection } from '@nats-io/nats-core'
import { countPrimes } from '../jobs/primes-sieve.js'
import {
  encode,
  openUnit,
  parseUnitPayload,
  sha256Hex,
  subjectsFor,
  WORK_AVAILABLE_QUEUE,
  type Identity,
  type UnitPayload,
} from '../shared/index.js'
import { createCoordinatorClient } from '../worker/index.js'
import { sleep } from './stats.js'

/** What a volunteer answers for a unit. */
export type Lie =
  /** The true count. */
  | 'never'
  /** A wrong count of its own, different every time (independent saboteurs). */
  | 'random'
  /** The same wrong count as every other colluder: a function of the unit's input. */
  | 'forged'

export interface Behaviour {
  lie: Lie
  /** Results returned honestly before it starts lying (earning trust first). 0: lies from the start. */
  honestFor: number
  /** Simulated compute time per unit, ms, drawn uniformly from [min, max]; [0, 0] answers at once. */
  computeMs: readonly [number, number]
  /** Units it works on at once (it asks for more as they finish), like a daemon's threads + buffer. */
  slots: number
}

export interface VolunteerRecord {
  id: string
  saboteur: boolean
  /** Results the coordinator acknowledged as accepted. */
  results: number
  /** Of those, wrong ones, with the time (epoch ms) each was sent. */
  wrongAt: number[]
  /** Work requests and submissions that failed (timeouts, refusals). */
  errors: number
}

export interface Crowd {
  /** Accepted results per unit id, all volunteers together (spot checks and reissues included). */
  resultsByUnit: Map<string, number>
  volunteers: VolunteerRecord[]
  /** Stops every volunteer: no more requests or results; closes their connections. */
  stop(): Promise<void>
}

/** The job's true count for a unit input, and the count colluders agree on instead. */
export const truthOf = (input: { from: number; to: number }): number => countPrimes(input.from, input.to)
export const forgedOf = (input: { from: number; to: number }): number => truthOf(input) + 1

const PRIMES = 'primes@1'

interface Volunteer {
  record: VolunteerRecord
  stop(): Promise<void>
}

function answer(b: Behaviour, honestSoFar: number, input: { from: number; to: number }): number {
  if (b.lie === 'never' || honestSoFar < b.honestFor) return truthOf(input)
  if (b.lie === 'forged') return forgedOf(input)
  return truthOf(input) + 2 + Math.floor(Math.random() * 1_000_000)
}

function startVolunteer(init: {
  nats: NatsConnection
  identity: Identity
  subjectPrefix: string
  behaviour: Behaviour
  saboteur: boolean
  resultsByUnit: Map<string, number>
}): Volunteer {
  const { nats, identity, behaviour: b } = init
  const subjects = subjectsFor(init.subjectPrefix)
  const client = createCoordinatorClient({ nats, identity, subjects, timeoutMs: 5_000 })
  const record: VolunteerRecord = {
    id: identity.id,
    saboteur: init.saboteur,
    results: 0,
    wrongAt: [],
    errors: 0,
  }
  const held = new Set<string>()
  let stopped = false
  let honestSoFar = 0
  let wake: (() => void) | undefined
  const poke = (): void => {
    const w = wake
    wake = undefined
    w?.()
  }
  const sub = nats.subscribe(subjects.workAvailable, { queue: WORK_AVAILABLE_QUEUE, callback: poke })
  const tasks = new Set<Promise<void>>()

  const work = async (unit: UnitPayload): Promise<void> => {
    try {
      const input = unit.input as { from: number; to: number }
      const [lo, hi] = b.computeMs
      if (hi > 0) await sleep(lo + Math.random() * (hi - lo))
      if (stopped) return
      const count = answer(b, honestSoFar, input)
      const wrong = count !== truthOf(input)
      const output = encode({ count })
      const ack = await client.submitResult({
        replicaId: unit.replicaId,
        unitId: unit.unitId,
        jobId: unit.jobId,
        digest: await sha256Hex(output),
        output,
        computeMs: Math.round(hi > 0 ? (lo + hi) / 2 : 0),
      })
      if (ack.status !== 'accepted') return
      record.results++
      init.resultsByUnit.set(unit.unitId, (init.resultsByUnit.get(unit.unitId) ?? 0) + 1)
      if (wrong) record.wrongAt.push(Date.now())
      else honestSoFar++
    } catch {
      record.errors++
    } finally {
      held.delete(unit.replicaId)
      poke()
    }
  }

  const loop = (async () => {
    while (!stopped) {
      let waitMs = 250
      const room = b.slots - held.size
      if (room > 0) {
        try {
          const grant = await client.requestWork(room, [PRIMES], [...held])
          for (const env of grant.units) {
            const unit = parseUnitPayload(await openUnit(env))
            held.add(unit.replicaId)
            const t = work(unit)
            tasks.add(t)
            void t.finally(() => tasks.delete(t))
          }
          if (grant.units.length > 0) waitMs = 0
          else if (grant.limit?.by === 'rate') waitMs = Math.max(10, grant.retryAfterMs)
        } catch {
          record.errors++
        }
      }
      if (stopped) break
      if (waitMs > 0) {
        await Promise.race([sleep(waitMs), new Promise<void>((r) => (wake = r))])
        wake = undefined
      }
    }
  })()

  return {
    record,
    async stop() {
      stopped = true
      poke()
      await loop
      await Promise.allSettled([...tasks])
      sub.unsubscribe()
      await nats.close()
    },
  }
}

export interface CrowdMember {
  nats: NatsConnection
  identity: Identity
  behaviour: Behaviour
  saboteur: boolean
}

/** Starts every member's work loop. */
export function startCrowd(subjectPrefix: string, members: readonly CrowdMember[]): Crowd {
  const resultsByUnit = new Map<string, number>()
  const volunteers = members.map((m) => startVolunteer({ ...m, subjectPrefix, resultsByUnit }))
  return {
    resultsByUnit,
    volunteers: volunteers.map((v) => v.record),
    async stop() {
      await Promise.all(volunteers.map((v) => v.stop()))
    },
  }
}
