// The daemon's held units and its lease keeper, on their own: state moves, counts and the `held`
// report; lost leases dropped and aborted; which buffered units would start too late.
import test from 'ava'
import { randomId, type LeaseRenewed, type UnitPayload } from '../shared/index.js'
import { createHeldUnits, HeldStateError, type HeldUnits } from '../worker/daemon/held-units.js'
import { createLeaseKeeper, lateUnits } from '../worker/daemon/lease-keeper.js'
import { testLogger } from './helpers/cluster.js'
import { unitPayload } from './helpers/protocol-fixtures.js'

const unit = (over: Partial<UnitPayload> = {}): UnitPayload =>
  unitPayload('worker', 'kid', { jobId: `job-${randomId()}`, ...over })

function heldUnits(): { held: HeldUnits; stats: { held: number; running: number }; reports: string[][] } {
  const stats = { held: 0, running: 0 }
  const reports: string[][] = []
  return { held: createHeldUnits({ stats, onChange: (ids) => reports.push(ids) }), stats, reports }
}

/** Lets the held ids' report of this turn go out. */
const reported = (): Promise<void> => new Promise((resolve) => queueMicrotask(resolve))

test('held units - added units are buffered, counted at once and reported once per turn', async (t) => {
  const { held, stats, reports } = heldUnits()
  const [a, b] = [unit(), unit()]
  const added = held.add([
    { unit: a, expiresAt: a.expiresAt },
    { unit: b, expiresAt: b.expiresAt },
  ])
  t.deepEqual(
    added.map((h) => h.state),
    ['buffered', 'buffered'],
  )
  t.is(added[0]!.leaseMs, a.expiresAt - a.issuedAt)
  t.deepEqual(stats, { held: 2, running: 0 })
  t.deepEqual(reports, [], 'reported after the turn, once for all its changes')
  held.move(added[0]!, 'buffered', 'running')
  await reported()
  t.deepEqual(reports, [[a.replicaId, b.replicaId]])
  // The same replica again (a grant repeated, a peer's copy) is not held twice.
  t.deepEqual(held.add([{ unit: a, expiresAt: a.expiresAt }]), [])
  await reported()
  t.is(reports.length, 1)
})

test('held units - a unit runs, submits and leaves; moves out of order are refused', (t) => {
  const { held, stats } = heldUnits()
  const u = unit()
  const [h] = held.add([{ unit: u, expiresAt: u.expiresAt }])
  t.deepEqual(held.move(h!, 'buffered', 'running'), [h])
  t.is(stats.running, 1)
  t.is(held.count('running'), 1)
  // Already running: a second start is a no-op, not a second run.
  t.deepEqual(held.move(h!, 'buffered', 'running'), [])
  t.throws(() => held.move(h!, 'running', 'buffered'), { instanceOf: HeldStateError })
  t.throws(() => held.move(h!, 'submitting', 'running'), { instanceOf: HeldStateError })
  held.move(h!, 'running', 'submitting')
  t.deepEqual(stats, { held: 1, running: 0 })
  t.deepEqual(held.remove(h!), [h])
  t.deepEqual(stats, { held: 0, running: 0 })
  t.deepEqual(held.remove(h!), [], 'a unit already gone is not removed twice')
})

test('held units - a unit handed to a peer comes back to the buffer when the handoff fails', (t) => {
  const { held } = heldUnits()
  const u = unit()
  const [h] = held.add([{ unit: u, expiresAt: u.expiresAt }])
  held.move(h!, 'buffered', 'leaving')
  t.is(held.count('buffered'), 0)
  t.deepEqual(held.move(h!, 'leaving', 'buffered'), [h])
  t.deepEqual(held.inState('buffered'), [h])
})

test('held units - a reservation for a peer handoff is replaced by the claimed unit, or undone', async (t) => {
  const { held, reports } = heldUnits()
  const [claimed, dropped] = [unit(), unit()]
  const undo = held.reserve([claimed, dropped])
  t.is(held.count('claiming'), 2)
  t.deepEqual(
    held.add([{ unit: claimed, expiresAt: claimed.expiresAt }]),
    [],
    'only a claim completes a reservation',
  )
  const [h] = held.add([{ unit: claimed, expiresAt: claimed.expiresAt }], true)
  t.is(h?.state, 'buffered')
  await reported()
  t.deepEqual(reports.at(-1), [claimed.replicaId, dropped.replicaId])
  undo()
  t.deepEqual(held.ids(), [claimed.replicaId], 'the undo drops only what is still reserved')
})

test('held units - an old entry of a replica does not remove its newer one', (t) => {
  const { held } = heldUnits()
  const u = unit()
  const reserved = held.reserve([u])
  const [old] = held.add([{ unit: u, expiresAt: u.expiresAt }], true)
  held.remove(old!)
  const [fresh] = held.add([{ unit: u, expiresAt: u.expiresAt + 1 }])
  t.deepEqual(held.remove(old!), [])
  t.is(held.get(u.replicaId), fresh)
  reserved()
  t.is(held.get(u.replicaId), fresh)
})

test('lease keeper - renewals move deadlines; lost leases are aborted and dropped, results on their way kept', async (t) => {
  const { held } = heldUnits()
  const [kept, lost, sending] = [unit(), unit(), unit()]
  const hs = held.add([kept, lost, sending].map((u) => ({ unit: u, expiresAt: u.expiresAt })))
  held.move(hs[2]!, 'buffered', 'running')
  held.move(hs[2]!, 'running', 'submitting')
  const asked: string[][] = []
  const lostReports: string[][] = []
  const stats = { leasesLost: 0 }
  const keeper = createLeaseKeeper({
    held,
    client: {
      renew: (ids): Promise<LeaseRenewed> => {
        asked.push(ids)
        return Promise.resolve({
          type: 'lease.renewed',
          v: 1,
          expiresAt: { [kept.replicaId]: 123 },
          lost: [lost.replicaId, sending.replicaId],
        })
      },
    },
    stats,
    log: testLogger('keeper').log,
    onLost: (ids) => lostReports.push(ids),
    onLate: () => Promise.resolve(),
    perUnitMs: () => undefined,
    threads: () => 1,
    judging: () => true,
  })
  await keeper.renew()
  keeper.stop()
  t.deepEqual(asked, [[kept.replicaId, lost.replicaId, sending.replicaId]])
  t.is(held.get(kept.replicaId)?.expiresAt, 123)
  t.true(hs[1]!.abort.signal.aborted)
  t.false(hs[2]!.abort.signal.aborted)
  t.deepEqual(held.ids(), [kept.replicaId, sending.replicaId])
  t.is(stats.leasesLost, 2)
  t.deepEqual(lostReports, [[lost.replicaId, sending.replicaId]])
})

test('lease keeper - buffered units that cannot start before their lease ends are late', (t) => {
  const { held } = heldUnits()
  const now = 1_000_000
  // Two threads, one unit running, 10 s per unit: buffered unit k starts at now + floor((k + 1) / 2) * 10 s.
  const hs = held.add(
    [25_000, 5_000, 15_000, 15_000].map((ms) => {
      const u = unit()
      return { unit: u, expiresAt: now + ms }
    }),
  )
  const late = lateUnits(hs, { running: 1, threads: 2, perUnitMs: 10_000, now })
  t.deepEqual(late, [hs[1], hs[3]])
})
