// The daemon's result submitter on its own, with a send function of the test's making: results
// queued while a send is in flight leave together, transient failures are retried, refusals and
// results past their lease are given up.
import test from 'ava'
import { LIMITS, randomId, type ResultAck, type UnitPayload } from '../shared/index.js'
import {
  CoordinatorUnavailableError,
  RequestRefusedError,
  type ResultFields,
} from '../worker/coordinator-client.js'
import {
  createResultSubmitter,
  sendBatches,
  type ResultSubmitterInit,
  type SendOutcome,
  type Submittable,
} from '../worker/daemon/result-submitter.js'
import { bufferFor } from '../worker/daemon/work-filler.js'
import { testLogger } from './helpers/cluster.js'
import { unitPayload } from './helpers/protocol-fixtures.js'

const ack = (status: ResultAck['status'] = 'accepted'): ResultAck => ({ type: 'result.ack', v: 1, status })
const outcome = { output: new Uint8Array([1]), digest: 'd', computeMs: 5 }

function held(over: Partial<UnitPayload> = {}): Submittable {
  const unit = unitPayload('worker', 'kid', { jobId: `job-${randomId()}`, ...over })
  return { unit, expiresAt: unit.expiresAt, leaseMs: unit.expiresAt - unit.issuedAt }
}

function submitter(send: ResultSubmitterInit['send'], over: Partial<ResultSubmitterInit> = {}) {
  const stats = { resultsAccepted: 0, resultsDuplicate: 0, resultsRejected: 0 }
  const acks: [string, ResultAck][] = []
  const s = createResultSubmitter({
    send,
    stats,
    log: testLogger('submitter').log,
    onAck: (unitId, a) => acks.push([unitId, a]),
    retryDelayMs: () => 0,
    ...over,
  })
  return { s, stats, acks }
}

/** A send whose calls the test answers one by one. */
function heldSend() {
  const calls: { batch: readonly ResultFields[]; answer: (o: SendOutcome[]) => void }[] = []
  let arrived: () => void = () => {}
  const send = (batch: readonly ResultFields[]): Promise<SendOutcome[]> =>
    new Promise((answer) => {
      calls.push({ batch, answer })
      arrived()
    })
  const nextCall = (n: number): Promise<void> =>
    calls.length >= n ? Promise.resolve() : new Promise((r) => (arrived = () => calls.length >= n && r()))
  return { send, calls, nextCall }
}

test('result submitter - results that arrive while a send is in flight go together in the next one', async (t) => {
  const { send, calls, nextCall } = heldSend()
  const { s, stats, acks } = submitter(send)
  const [a, b, c] = [held(), held(), held()]
  const pa = s.submit(a, outcome)
  await nextCall(1)
  const pb = s.submit(b, outcome)
  const pc = s.submit(c, outcome)
  t.is(calls.length, 1, 'nothing more is sent while the first send is in flight')
  t.is(s.pending, 3)
  calls[0]!.answer([ack()])
  await nextCall(2)
  t.deepEqual(
    calls.map((call) => call.batch.map((r) => r.unitId)),
    [[a.unit.unitId], [b.unit.unitId, c.unit.unitId]],
  )
  t.like(calls[1]!.batch[0], { replicaId: b.unit.replicaId, jobId: b.unit.jobId, digest: 'd', computeMs: 5 })
  calls[1]!.answer([ack('duplicate'), ack('rejected')])
  t.deepEqual(
    (await Promise.all([pa, pb, pc])).map((r) => r?.status),
    ['accepted', 'duplicate', 'rejected'],
  )
  t.deepEqual(stats, { resultsAccepted: 1, resultsDuplicate: 1, resultsRejected: 1 })
  t.deepEqual(
    acks.map(([id]) => id),
    [a.unit.unitId, b.unit.unitId, c.unit.unitId],
  )
  t.is(s.pending, 0)
})

test('result submitter - a result whose send failed is sent again after a backoff until answered', async (t) => {
  let sends = 0
  const delays: number[] = []
  const { s, stats } = submitter(
    (batch) => {
      sends++
      return Promise.resolve(batch.map(() => (sends < 3 ? new CoordinatorUnavailableError('busy') : ack())))
    },
    {
      retryDelayMs: (attempt) => {
        delays.push(attempt)
        return 0
      },
    },
  )
  t.is((await s.submit(held(), outcome))?.status, 'accepted')
  t.is(sends, 3)
  t.deepEqual(delays, [0, 1])
  t.is(stats.resultsAccepted, 1)
})

test('result submitter - a whole send that fails counts for every result in it', async (t) => {
  let sends = 0
  const { s } = submitter((batch) => {
    sends++
    return sends === 1 ? Promise.reject(new Error('no responders')) : Promise.resolve(batch.map(() => ack()))
  })
  t.is((await s.submit(held(), outcome))?.status, 'accepted')
  t.is(sends, 2)
})

test('result submitter - a refusal is final', async (t) => {
  let sends = 0
  const { s, stats, acks } = submitter((batch) => {
    sends++
    return Promise.resolve(batch.map(() => new RequestRefusedError('not your lease')))
  })
  t.is(await s.submit(held(), outcome), undefined)
  t.is(sends, 1)
  t.is(stats.resultsRejected, 1)
  t.deepEqual(acks, [])
})

test('result submitter - a result is given up once its lease has long passed', async (t) => {
  let sends = 0
  const h = held()
  const { s, stats } = submitter(
    (batch) => {
      sends++
      return Promise.resolve(batch.map(() => new CoordinatorUnavailableError('busy')))
    },
    { now: () => h.expiresAt + h.leaseMs + 1 },
  )
  t.is(await s.submit(h, outcome), undefined)
  t.is(sends, 1)
  t.deepEqual(stats, { resultsAccepted: 0, resultsDuplicate: 0, resultsRejected: 0 })
})

test('result submitter - close gives up the results waiting to be sent again', async (t) => {
  let armed: () => void = () => {}
  const retryArmed = new Promise<void>((r) => (armed = r))
  const { s } = submitter(
    (batch) => Promise.resolve(batch.map(() => new CoordinatorUnavailableError('busy'))),
    {
      retryDelayMs: () => {
        armed()
        return 60_000
      },
    },
  )
  const p = s.submit(held(), outcome)
  await retryArmed
  t.is(s.pending, 1)
  s.close()
  t.is(await p, undefined)
  t.is(s.pending, 0)
  t.is(await s.submit(held(), outcome), undefined, 'nothing is queued after close')
})

test('result submitter - sendBatches packs results into result.batch requests within the count and byte bounds', async (t) => {
  const sent: number[][] = []
  const client = {
    submitResults: (rs: ResultFields[]) => {
      sent.push(rs.map((r) => r.output.length))
      return Promise.resolve(rs.map(() => ack()))
    },
  }
  const item = (bytes: number): ResultFields => ({
    replicaId: `j:0:r${randomId()}`,
    unitId: 'j:0',
    jobId: 'j',
    digest: 'd',
    output: new Uint8Array(bytes),
    computeMs: 1,
  })
  const many = Array.from({ length: LIMITS.maxBatchResults + 3 }, () => item(10))
  const out = await sendBatches(client)(many)
  t.is(out.length, many.length)
  t.deepEqual(
    sent.map((g) => g.length),
    [LIMITS.maxBatchResults, 3],
  )
  sent.length = 0
  const half = LIMITS.maxBatchOutputBytes / 2
  await sendBatches(client)([item(half), item(half), item(1), item(LIMITS.maxBatchOutputBytes), item(1)])
  t.deepEqual(sent, [[half, half], [1], [LIMITS.maxBatchOutputBytes], [1]])
  // A failed request answers each of its results with the error; the other requests still count.
  let calls = 0
  const flaky = {
    submitResults: (rs: ResultFields[]) =>
      calls++ === 0
        ? Promise.reject(new CoordinatorUnavailableError('down'))
        : Promise.resolve(rs.map(() => ack())),
  }
  const answers = await sendBatches(flaky)(Array.from({ length: LIMITS.maxBatchResults + 1 }, () => item(1)))
  t.is(answers.filter((a) => a instanceof CoordinatorUnavailableError).length, LIMITS.maxBatchResults)
  t.like(answers.at(-1), { status: 'accepted' })
})

test('work filler - the buffer holds about bufferMs of work per thread, at least one unit per thread', (t) => {
  t.is(bufferFor(2, undefined, 500), 2, 'before any unit ended: one per thread')
  t.is(bufferFor(2, 1_000, 500), 2, 'long units: one per thread')
  t.is(bufferFor(2, 100, 500), 10)
  t.is(bufferFor(4, 10, 500), 200)
  t.is(bufferFor(2, 1, 500), LIMITS.maxWant - 2, 'tiny units: as many as one grant carries')
})
