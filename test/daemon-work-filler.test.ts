// The daemon's work filler on its own, with a client of the test's making: what it asks for, and the
// `holding` list it sends. A lease left off that list is taken back by the coordinator as lost in
// transit, so the list must always be whole.
import test from 'ava'
import { LIMITS, randomId, type WorkGrant } from '../shared/index.js'
import { createHeldUnits, type HeldUnits } from '../worker/daemon/held-units.js'
import { createWorkFiller } from '../worker/daemon/work-filler.js'
import { createWake } from '../worker/wake.js'
import { testLogger } from './helpers/cluster.js'
import { unitPayload } from './helpers/protocol-fixtures.js'

interface Asked {
  want: number
  holding: string[] | undefined
}

/** Holds `n` units, the first `submitting` of them with their results on the way. */
function holding(n: number, submitting: number): HeldUnits {
  const held = createHeldUnits({ stats: { held: 0, running: 0 }, onChange: () => {} })
  const units = Array.from({ length: n }, () => unitPayload('worker', 'kid', { jobId: `job-${randomId()}` }))
  const hs = held.add(units.map((unit) => ({ unit, expiresAt: unit.expiresAt })))
  for (const h of hs.slice(0, submitting)) {
    held.move(h, 'buffered', 'running')
    held.move(h, 'running', 'submitting')
  }
  return held
}

/** Runs the fill loop until its first work request (or until it is clear none comes) and returns it. */
async function firstRequest(held: HeldUnits, bufferUnits: number): Promise<Asked | undefined> {
  const wake = createWake()
  let asked: Asked | undefined
  let stop = false
  const filler = createWorkFiller({
    held,
    client: {
      requestWork(want, _accepts, list): Promise<WorkGrant> {
        asked = { want, holding: list }
        stop = true
        return Promise.resolve({ type: 'work.grant', v: 1, units: [], retryAfterMs: 0 })
      },
    },
    wake,
    accepts: ['primes@1'],
    threads: () => 2,
    bufferUnits,
    paused: () => false,
    stopping: () => stop,
    accept: () => Promise.resolve(),
    onPausedGrant: () => Promise.resolve(),
    log: testLogger('filler').log,
  })
  const loop = filler.run()
  // With no room the loop waits for a wake-up: give it one turn, then stop it.
  await new Promise((resolve) => setImmediate(resolve))
  stop = true
  wake.close()
  await loop
  return asked
}

test('work filler - it asks for at most as many units as keep its holding list whole, and sends the whole list', async (t) => {
  // 250 held, 249 of them with results on their way: room for 257 by the buffer, but only 6 more fit
  // in a list of LIMITS.maxReplicaIds (and a thread is about to starve, so it asks for those).
  const held = holding(250, 249)
  const asked = await firstRequest(held, LIMITS.maxReplicaIds)
  t.is(asked?.want, LIMITS.maxReplicaIds - 250)
  t.deepEqual(asked?.holding, held.ids())
})

test('work filler - holding more than one list can name, it does not ask', async (t) => {
  const held = holding(LIMITS.maxReplicaIds, LIMITS.maxReplicaIds - 2)
  t.is(await firstRequest(held, LIMITS.maxReplicaIds), undefined)
})

test('work filler - it asks once half its buffer has room, not for every unit that ends', async (t) => {
  // 2 threads, a buffer of 40: capacity 42. 30 units to compute (5 more with results on their way):
  // room for 12, under half the buffer — not worth a request yet.
  t.is(await firstRequest(holding(35, 5), 40), undefined)
  // 20 to compute: room for 22, half the buffer or more — it asks for all of it.
  t.like(await firstRequest(holding(35, 15), 40), { want: 22 })
})
