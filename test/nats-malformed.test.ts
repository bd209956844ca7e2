// Malformed NATS messages are dropped and counted, never fatal: each request gets an error reply,
// the coordinator's `malformed` counter grows by one per message, and real jobs still complete.
import test, { type ExecutionContext } from 'ava'
import { connect } from '@nats-io/transport-node'
import type { NatsConnection } from '@nats-io/nats-core'
import {
  decode,
  encode,
  generateIdentity,
  isErrorReply,
  LIMITS,
  seal,
  subjectsFor,
  type ErrorReply,
  type Identity,
  type SignedEnvelope,
  type Subjects,
  toBase64Url,
  VOLUNTEER_NATS_LIMITS,
} from '../shared/index.js'
import { startCluster, waitForJob, waitUntil, type Cluster } from './helpers/cluster.js'
import {
  computeOutput,
  PRIMES,
  rawRequest,
  resultPayload,
  sealWorkerRequest,
  unitPayload,
} from './helpers/protocol-fixtures.js'
import { useServices, asCoordinator } from './helpers/services.js'
import { rawVolunteer } from './helpers/volunteer.js'

const services = useServices(test)

const HUGE = 5 * 1024 * 1024

type SubjectName = 'workRequest' | 'resultSubmit' | 'leaseRenew' | 'leaseRelease'
type RequestKind = 'work.request' | 'result' | 'lease.renew' | 'lease.release'

const KIND: Record<SubjectName, RequestKind> = {
  workRequest: 'work.request',
  resultSubmit: 'result',
  leaseRenew: 'lease.renew',
  leaseRelease: 'lease.release',
}

/** A well-formed, correctly signed request of `kind` from `identity`; `over` changes payload fields. */
async function validRequest(
  kind: RequestKind,
  identity: Identity,
  over: Record<string, unknown> = {},
): Promise<SignedEnvelope> {
  switch (kind) {
    case 'work.request':
      return sealWorkerRequest(kind, identity, { want: 1, accepts: [PRIMES] }, over)
    case 'lease.renew':
      return sealWorkerRequest(kind, identity, { replicaIds: ['j:0:r1'] }, over)
    case 'lease.release':
      return sealWorkerRequest(kind, identity, { replicaIds: ['j:0:r1'], reason: 'test' }, over)
    case 'result': {
      const { output, digest } = await computeOutput(PRIMES, { from: 0, to: 1000 })
      const fields = { replicaId: 'j:0:r1', unitId: 'j:0', jobId: 'j', digest, output, computeMs: 1 }
      return seal('result', { ...resultPayload(identity, fields), ...over }, identity)
    }
  }
}

interface Case {
  what: string
  data: Uint8Array
  /** Expected error code. */
  code: ErrorReply['code']
  message?: RegExp
}

/** Every malformed message the test sends to the subject of `kind`, as the volunteer `me`. */
async function malformedCases(kind: RequestKind, coordinator: Identity, me: Identity): Promise<Case[]> {
  const other = await generateIdentity(true)
  const wrongKind: RequestKind = kind === 'work.request' ? 'lease.renew' : 'work.request'
  const valid = await validRequest(kind, me)
  const cases: Case[] = [
    { what: 'garbage bytes', data: new Uint8Array([0xc1, 0xff, 0x00, 0x13, 0x37]), code: 'bad-request' },
    { what: 'an empty payload', data: new Uint8Array(0), code: 'bad-request', message: /empty/ },
    { what: 'text', data: new TextEncoder().encode('hello coordinator'), code: 'bad-request' },
    { what: 'msgpack of a number', data: encode(42), code: 'bad-request', message: /must be a map/ },
    { what: 'msgpack of a list', data: encode([1, 2, 3]), code: 'bad-request' },
    { what: 'msgpack of the wrong map', data: encode({ hello: 'world' }), code: 'bad-request' },
    {
      what: 'an envelope without a signature',
      data: encode({ ...valid, sig: undefined }),
      code: 'bad-request',
      message: /sig/,
    },
    {
      what: 'an envelope with a short signer',
      data: encode({ ...valid, signer: valid.signer.slice(0, 16) }),
      code: 'bad-request',
      message: /signer/,
    },
    { what: `a ${HUGE}-byte message`, data: new Uint8Array(HUGE), code: 'bad-request', message: /exceeds/ },
    {
      what: `an envelope of kind ${wrongKind}`,
      data: encode(await validRequest(wrongKind, me)),
      code: 'bad-request',
      message: /kind/,
    },
    {
      what: 'a unit signed by the coordinator itself',
      data: encode(await seal('unit', unitPayload(me.id, coordinator.keyId), coordinator)),
      code: 'bad-request',
      message: /kind/,
    },
    {
      what: 'a signature made for another kind, relabelled',
      data: encode({ ...(await validRequest(wrongKind, me)), kind }),
      code: 'bad-signature',
    },
    {
      what: 'a payload whose worker is not the signer',
      data: encode(await validRequest(kind, me, { worker: other.id })),
      code: 'bad-request',
      message: /worker does not match the envelope signer/,
    },
    {
      what: 'a timestamp far in the past',
      data: encode(await validRequest(kind, me, { at: Date.now() - 2 * LIMITS.maxClockSkewMs })),
      code: 'bad-request',
      message: /at is too far/,
    },
    {
      what: 'a timestamp far in the future',
      data: encode(await validRequest(kind, me, { at: Date.now() + 2 * LIMITS.maxClockSkewMs })),
      code: 'bad-request',
      message: /at is too far/,
    },
    {
      what: 'a payload of the wrong type',
      data: encode(await validRequest(kind, me, { type: 'something.else' })),
      code: 'bad-request',
      message: /type must be/,
    },
    {
      what: 'a payload of a future version',
      data: encode(await validRequest(kind, me, { v: 2 })),
      code: 'bad-request',
      message: /v must be 1/,
    },
  ]
  return cases
}

async function expectRefused(
  t: ExecutionContext,
  nc: NatsConnection,
  cluster: Cluster,
  subject: string,
  c: Case,
): Promise<void> {
  const counters = cluster.coordinators[0]!.counters
  const before = counters.malformed
  const reply = await rawRequest(nc, subject, c.data)
  t.true(isErrorReply(reply), `${c.what}: ${JSON.stringify(reply)}`)
  t.like(reply, { type: 'error', v: 1, code: c.code }, c.what)
  if (c.message !== undefined) t.regex((reply as ErrorReply).message, c.message, c.what)
  t.is(counters.malformed, before + 1, `${c.what} is counted once`)
}

/** A real job, submitted after the abuse, completes with two workers. */
async function jobStillCompletes(t: ExecutionContext, cluster: Cluster): Promise<void> {
  const counters = cluster.coordinators[0]!.counters
  const { resultsAccepted, resultsRejected } = counters
  const job = await cluster.api.submit({ type: 'primes', params: { to: 100_000 }, redundancy: { quorum: 2 } })
  await cluster.addWorker()
  await cluster.addWorker()
  const done = await waitForJob(cluster.api, job.id, 30_000)
  t.is(done.state, 'completed', JSON.stringify(done))
  t.like(await cluster.api.result(job.id), { result: { count: 9592 } })
  t.is(counters.resultsAccepted, resultsAccepted + 2)
  t.is(counters.resultsRejected, resultsRejected)
}

async function withCluster(t: ExecutionContext, fn: (cluster: Cluster, nc: NatsConnection) => Promise<void>) {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const nc = await connect(asCoordinator(services()))
  t.teardown(() => nc.close())
  await fn(cluster, nc)
}

for (const name of ['workRequest', 'resultSubmit', 'leaseRenew', 'leaseRelease'] as const) {
  const kind = KIND[name]
  const suffix = kind === 'result' ? 'result.submit' : kind
  test(`nats malformed - ${suffix} refuses every malformed request with an error reply`, (t) =>
    withCluster(t, async (cluster, nc) => {
      const subject = subjectsFor(cluster.subjectPrefix)[name]
      // Sent by a volunteer on its own connection: replies reach only the signer's own inbox.
      const { identity: me, nats: vc } = await rawVolunteer(t, cluster)
      const cases = await malformedCases(kind, cluster.identity, me)
      // A volunteer cannot even send a message over its credentials' payload limit (the server refuses
      // it, test/volunteer-auth.test.ts); the coordinators' own bound is checked from a connection that can.
      for (const c of cases)
        await expectRefused(
          t,
          c.data.length > VOLUNTEER_NATS_LIMITS.payloadBytes ? nc : vc,
          cluster,
          subject,
          c,
        )
      t.is(cluster.coordinators[0]!.counters.malformed, cases.length)
      // A well-formed request on the same subject is served as before.
      const ok = await rawRequest(vc, subject, encode(await validRequest(kind, me)))
      t.false(isErrorReply(ok), JSON.stringify(ok))
      t.is(cluster.coordinators[0]!.counters.malformed, cases.length)
      await jobStillCompletes(t, cluster)
    }))
}

test('nats malformed - messages without a reply subject are dropped and counted', (t) =>
  withCluster(t, async (cluster, nc) => {
    const subjects: Subjects = subjectsFor(cluster.subjectPrefix)
    const counters = cluster.coordinators[0]!.counters
    const names = ['workRequest', 'resultSubmit', 'leaseRenew', 'leaseRelease'] as const
    const payloads = [new Uint8Array([0xc1, 0x00]), new Uint8Array(0), encode({ hello: 'world' })]
    for (const name of names) for (const p of payloads) nc.publish(subjects[name], p)
    nc.publish(subjects.workRequest, new Uint8Array(HUGE))
    const expected = names.length * payloads.length + 1
    await waitUntil('every published message to be counted', () => counters.malformed === expected, 10_000)
    // A later request is still answered, so nothing was left half-handled.
    const { identity: me, nats: vc } = await rawVolunteer(t, cluster)
    const ok = await rawRequest(vc, subjects.workRequest, encode(await validRequest('work.request', me)))
    t.like(ok, { type: 'work.grant' })
    t.is(counters.malformed, expected)
    t.is(counters.busy, 0)
    await jobStillCompletes(t, cluster)
  }))

test('nats malformed - a burst of malformed requests on every subject at once is all answered', (t) =>
  withCluster(t, async (cluster, nc) => {
    const subjects = subjectsFor(cluster.subjectPrefix)
    const names = ['workRequest', 'resultSubmit', 'leaseRenew', 'leaseRelease'] as const
    const replies = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        rawRequest(nc, subjects[names[i % names.length]!], encode({ i, junk: 'x'.repeat(i * 100) })),
      ),
    )
    t.true(replies.every(isErrorReply))
    t.is(cluster.coordinators[0]!.counters.malformed, 50)
    await jobStillCompletes(t, cluster)
  }))

test('nats malformed - a worker that receives garbage on work.available keeps working', (t) =>
  withCluster(t, async (cluster, nc) => {
    const subjects = subjectsFor(cluster.subjectPrefix)
    // Watch work requests (a plain subscription sees a copy of each) to know when the workers are
    // listening: a worker subscribes to work.available before it first asks for work.
    const askers = new Set<string>()
    nc.subscribe(subjects.workRequest, {
      callback: (_err, msg) => {
        const env = decode(msg.data) as SignedEnvelope
        askers.add(toBase64Url(env.signer))
      },
    })
    await nc.flush()
    const a = await cluster.addWorker()
    const b = await cluster.addWorker()
    await waitUntil('both workers to ask for work', () => askers.has(a.daemon.id) && askers.has(b.daemon.id))
    for (const payload of [
      new Uint8Array([0xc1, 0xff]),
      new Uint8Array(0),
      encode({ type: 'work.grant', v: 1, units: [{ junk: true }] }),
      new Uint8Array(HUGE),
    ]) {
      nc.publish(subjects.workAvailable, payload)
    }
    await nc.flush()
    const job = await cluster.api.submit({
      type: 'primes',
      params: { to: 100_000 },
      redundancy: { quorum: 2 },
    })
    const done = await waitForJob(cluster.api, job.id, 30_000)
    t.is(done.state, 'completed')
    for (const w of [a, b]) {
      t.false(w.nats.isClosed())
      t.is(w.daemon.stats.unitsRefused, 0)
      t.is(w.daemon.stats.unitsFailed, 0)
    }
    t.is(a.daemon.stats.unitsDone + b.daemon.stats.unitsDone, 2)
    t.is(cluster.coordinators[0]!.counters.malformed, 0)
  }))
