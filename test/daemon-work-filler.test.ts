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

/** The filler's settings every test here shares: 2 threads, primes, never paused. */
const COMMON = {
  accepts: ['primes@1'],
  threads: () => 2,
  paused: () => false,
  accept: () => Promise.resolve(),
  onPausedGrant: () => Promise.resolve(),
  log: testLogger('filler').log,
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
    ...COMMON,
    bufferUnits,
    stopping: () => stop,
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

/** A fill loop whose client answers every request with an empty grant (with `limit`, if given). */
function emptyGrants(limit?: WorkGrant['limit']) {
  const wake = createWake()
  const announced = createWake()
  let requests = 0
  let onRequest: (() => void) | undefined
  let stop = false
  const filler = createWorkFiller({
    held: holding(0, 0),
    client: {
      requestWork(): Promise<WorkGrant> {
        requests++
        onRequest?.()
        return Promise.resolve({
          type: 'work.grant',
          v: 1,
          units: [],
          retryAfterMs: 600_000,
          ...(limit === undefined ? {} : { limit }),
        })
      },
    },
    wake,
    announced,
    ...COMMON,
    bufferUnits: 4,
    stopping: () => stop,
  })
  const loop = filler.run()
  return {
    wake,
    announced,
    requests: () => requests,
    /** Resolves at the next request. */
    nextRequest: () => new Promise<void>((resolve) => (onRequest = resolve)),
    /** Lets the loop run until it waits again. */
    settle: async () => {
      for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve))
    },
    async stop() {
      stop = true
      wake.close()
      announced.close()
      await loop
    },
  }
}

test("work filler - an empty grant's wait is waited as said: only work.available ends it early, not the worker's own events", async (t) => {
  const f = emptyGrants()
  t.teardown(() => f.stop())
  await f.settle()
  t.is(f.requests(), 1)
  // Units ending, results sent, peers leaving: none of them makes work appear at the coordinators.
  for (let i = 0; i < 5; i++) {
    f.wake.notify()
    await f.settle()
  }
  t.is(f.requests(), 1, 'no request before the wait is over')
  // work.available notifies both signals, as the daemon does.
  const next = f.nextRequest()
  f.announced.notify()
  f.wake.notify()
  await next
  t.is(f.requests(), 2)
})

test('work filler - at the lease cap, any change on the worker ends the wait (a result validated makes room)', async (t) => {
  const f = emptyGrants({ by: 'leases', cap: 4, holding: 4, message: 'at the cap' })
  t.teardown(() => f.stop())
  await f.settle()
  t.is(f.requests(), 1)
  const next = f.nextRequest()
  f.wake.notify()
  await next
  t.is(f.requests(), 2)
})
