// A worker refuses units it cannot trust: altered, signed by an unknown key, expired, or addressed
// to another worker. A fake coordinator in the test (on the real NATS) grants hand-made units.
import test, { type ExecutionContext } from 'ava'
import { connect } from '@nats-io/transport-node'
import { builtinJobTypes } from '../jobs/index.js'
import {
  decode,
  encode,
  equalBytes,
  ExpiredError,
  generateIdentity,
  open,
  ProtocolError,
  seal,
  sealUnits,
  sha256Hex,
  SignatureError,
  subjectsFor,
  type Identity,
  type ResultAck,
  type SignedEnvelope,
  type UnitPayload,
} from '../shared/index.js'
import { trustedKeysFrom, verifyUnit } from '../worker/index.js'
import type { VerifyInit } from '../worker/unit-verifier.js'
import { startCluster, waitUntil, type Cluster } from './helpers/cluster.js'
import { computeOutput, flipBit, startFakeCoordinator, unitPayload } from './helpers/protocol-fixtures.js'
import { useServices, asCoordinator } from './helpers/services.js'

const services = useServices(test)

interface Ctx {
  cluster: Cluster
  /** The trusted coordinator key (the cluster's own, since it runs no coordinator). */
  coordinator: Identity
  worker: Identity
}

/** Builds the bad unit of one case. */
type MakeBad = (c: Ctx) => Promise<SignedEnvelope>

/** A correctly signed unit for the worker. */
const goodUnit = (c: Ctx, over: Partial<UnitPayload> = {}): Promise<SignedEnvelope> =>
  seal('unit', unitPayload(c.worker.id, c.coordinator.keyId, over), c.coordinator)

/**
 * Grants the bad unit, then a good one. The worker must refuse the first (a 'refused' event whose
 * reason matches `expected`, `unitsRefused` 1) and run only the second: the good unit's result
 * arriving proves the worker kept going, and it is the only result ever submitted.
 */
async function refusesUnit(t: ExecutionContext, makeBad: MakeBad, expected: RegExp): Promise<void> {
  const cluster = await startCluster({ services: services(), coordinators: 0 })
  const nc = await connect(asCoordinator(services()))
  try {
    const c: Ctx = { cluster, coordinator: cluster.identity, worker: await generateIdentity(true) }
    const bad = await makeBad(c)
    const good = await goodUnit(c)
    const goodPayload = decode(good.body) as UnitPayload
    const fake = await startFakeCoordinator(nc, subjectsFor(cluster.subjectPrefix), [[bad], [good]])
    const w = await cluster.addWorker({ identity: c.worker })
    const refused: string[] = []
    const started: string[] = []
    const acks: [string, ResultAck][] = []
    w.daemon.on('refused', (reason) => refused.push(reason))
    w.daemon.on('started', (unit) => started.push(unit.replicaId))
    w.daemon.on('result', (unitId, ack) => acks.push([unitId, ack]))

    await waitUntil('the good unit to be answered', () => acks.length === 1, 30_000)
    t.is(refused.length, 1, `refused: ${JSON.stringify(refused)}`)
    t.regex(refused[0] ?? '', expected)
    t.is(w.daemon.stats.unitsRefused, 1)
    t.deepEqual(started, [goodPayload.replicaId], 'only the good unit was started')
    t.deepEqual(
      fake.results.map((r) => r.payload.replicaId),
      [goodPayload.replicaId],
      'only the good unit was submitted',
    )
    t.is(w.daemon.stats.unitsDone, 1)
    t.is(w.daemon.stats.held, 0)
    fake.stop()
  } finally {
    await cluster.stop()
    await nc.close()
  }
}

test('worker verification - a unit whose body was altered after signing is refused (SignatureError)', (t) =>
  refusesUnit(
    t,
    async (c) => {
      const payload = unitPayload(c.worker.id, c.coordinator.keyId)
      const env = await seal('unit', payload, c.coordinator)
      // Same signature, body re-encoded with a larger range: the coordinator never signed this.
      return { ...env, body: encode({ ...payload, input: { from: 0, to: 2000 } }) }
    },
    /^SignatureError: unit signature does not verify/,
  ))

test('worker verification - a unit with one flipped bit in its body is refused (SignatureError)', (t) =>
  refusesUnit(
    t,
    async (c) => {
      const env = await goodUnit(c)
      return { ...env, body: flipBit(env.body, env.body.length - 3) }
    },
    /^SignatureError: unit signature does not verify/,
  ))

test('worker verification - a unit signed by an unknown key is refused', (t) =>
  refusesUnit(
    t,
    async (c) => {
      const stranger = await generateIdentity(true)
      return seal('unit', unitPayload(c.worker.id, stranger.keyId), stranger)
    },
    /^SignatureError: unit is signed by an unknown key/,
  ))

test('worker verification - an unknown key cannot pass by naming the trusted key id', (t) =>
  refusesUnit(
    t,
    async (c) => {
      const stranger = await generateIdentity(true)
      return seal('unit', unitPayload(c.worker.id, c.coordinator.keyId), stranger)
    },
    /^SignatureError: unit is signed by an unknown key/,
  ))

test('worker verification - a unit whose lease has expired is refused (ExpiredError)', (t) =>
  refusesUnit(
    t,
    (c) => {
      const now = Date.now()
      return goodUnit(c, { issuedAt: now - 61_000, expiresAt: now - 1_000 })
    },
    /^ExpiredError: unit .* expired at /,
  ))

test('worker verification - a unit addressed to another worker is refused', (t) =>
  refusesUnit(
    t,
    async (c) => {
      const other = await generateIdentity(true)
      return seal('unit', unitPayload(other.id, c.coordinator.keyId), c.coordinator)
    },
    /^ProtocolError: unit is addressed to another worker/,
  ))

test('worker verification - in a grant of units under one signature, a tampered unit is refused and the others run', async (t) => {
  const cluster = await startCluster({ services: services(), coordinators: 0 })
  const nc = await connect(asCoordinator(services()))
  try {
    const c: Ctx = { cluster, coordinator: cluster.identity, worker: await generateIdentity(true) }
    const payloads = [0, 1, 2, 3].map((i) =>
      unitPayload(c.worker.id, c.coordinator.keyId, { input: { from: i * 1000, to: (i + 1) * 1000 } }),
    )
    const batch = await sealUnits(payloads, c.coordinator)
    const forged = encode({ ...payloads[2], input: { from: 0, to: 7 } })
    const grant = batch.map((env, i) => (i === 2 ? { ...env, body: forged } : env))
    const fake = await startFakeCoordinator(nc, subjectsFor(cluster.subjectPrefix), [grant])
    const w = await cluster.addWorker({ identity: c.worker })
    const refused: string[] = []
    const started: string[] = []
    w.daemon.on('refused', (reason) => refused.push(reason))
    w.daemon.on('started', (unit) => started.push(unit.replicaId))
    await waitUntil('three results answered', () => w.daemon.stats.resultsAccepted === 3, 30_000)
    t.is(refused.length, 1)
    t.regex(refused[0]!, /^SignatureError: unit is not in the batch its coordinator signed/)
    const good = [0, 1, 3].map((i) => payloads[i]!.replicaId)
    t.deepEqual([...started].sort(), [...good].sort(), 'only the units of the batch that verify ran')
    t.deepEqual(fake.results.map((r) => r.payload.replicaId).sort(), [...good].sort())
    for (const r of fake.results) {
      const p = payloads.find((x) => x.replicaId === r.payload.replicaId)!
      t.is(r.payload.digest, (await computeOutput(p.kind, p.input)).digest)
    }
    fake.stop()
  } finally {
    await cluster.stop()
    await nc.close()
  }
})

test('worker verification - a correctly signed unit is run and its signed result submitted', async (t) => {
  const cluster = await startCluster({ services: services(), coordinators: 0 })
  const nc = await connect(asCoordinator(services()))
  try {
    const c: Ctx = { cluster, coordinator: cluster.identity, worker: await generateIdentity(true) }
    const payload = unitPayload(c.worker.id, c.coordinator.keyId, { input: { from: 1000, to: 5000 } })
    const env = await seal('unit', payload, c.coordinator)
    const fake = await startFakeCoordinator(nc, subjectsFor(cluster.subjectPrefix), [[env]])
    const w = await cluster.addWorker({ identity: c.worker })
    const refused: string[] = []
    const acks: [string, ResultAck][] = []
    w.daemon.on('refused', (reason) => refused.push(reason))
    w.daemon.on('result', (unitId, ack) => acks.push([unitId, ack]))

    await waitUntil('the result to be answered', () => acks.length === 1, 30_000)
    t.deepEqual(acks, [[payload.unitId, { type: 'result.ack', v: 1, status: 'accepted' }]])
    t.deepEqual(refused, [])
    t.is(w.daemon.stats.unitsRefused, 0)
    t.is(w.daemon.stats.resultsAccepted, 1)
    t.true(fake.requests.length >= 1)

    t.is(fake.results.length, 1)
    const { envelope, payload: result } = fake.results[0]!
    // Signed by the worker's key, over the exact body; the payload names the worker.
    t.true(equalBytes(envelope.signer, c.worker.publicKey))
    await t.notThrowsAsync(open(envelope, (signer) => equalBytes(signer, c.worker.publicKey)))
    t.is(result.worker, c.worker.id)
    t.is(result.replicaId, payload.replicaId)
    t.is(result.unitId, payload.unitId)
    t.is(result.jobId, payload.jobId)
    t.is(result.digest, await sha256Hex(result.output))
    const expected = await computeOutput(payload.kind, payload.input)
    t.is(result.digest, expected.digest)
    t.deepEqual(decode(result.output), { count: 501 }) // primes in [1000, 5000): 669 - 168
    // A tampered copy of that result would not verify.
    await t.throwsAsync(open({ ...envelope, sig: flipBit(envelope.sig) }), { instanceOf: SignatureError })
    fake.stop()
  } finally {
    await cluster.stop()
    await nc.close()
  }
})

// ---- verifyUnit on its own: fast, no NATS -------------------------------------------------------

async function verifyFixture() {
  const coordinator = await generateIdentity(true)
  const worker = await generateIdentity(true)
  const init: VerifyInit = {
    trusted: trustedKeysFrom([{ keyId: coordinator.keyId, publicKey: coordinator.publicKey }]),
    self: worker.id,
    jobTypes: builtinJobTypes,
    now: Date.now(),
  }
  return { coordinator, worker, init }
}

test('verifyUnit - accepts a correctly signed unit and parses its input', async (t) => {
  const { coordinator, worker, init } = await verifyFixture()
  const payload = unitPayload(worker.id, coordinator.keyId)
  const unit = await verifyUnit(await seal('unit', payload, coordinator), init)
  t.deepEqual(unit, payload)
})

test('verifyUnit - refuses a body altered after signing', async (t) => {
  const { coordinator, worker, init } = await verifyFixture()
  const payload = unitPayload(worker.id, coordinator.keyId)
  const env = await seal('unit', payload, coordinator)
  const altered = { ...env, body: encode({ ...payload, input: { from: 0, to: 2000 } }) }
  await t.throwsAsync(verifyUnit(altered, init), {
    instanceOf: SignatureError,
    message: /signature does not verify/,
  })
  await t.throwsAsync(verifyUnit({ ...env, sig: flipBit(env.sig) }, init), { instanceOf: SignatureError })
})

test('verifyUnit - refuses a unit signed by an unknown key, whatever key id it names', async (t) => {
  const { coordinator, worker, init } = await verifyFixture()
  const stranger = await generateIdentity(true)
  for (const kid of [stranger.keyId, coordinator.keyId]) {
    await t.throwsAsync(verifyUnit(await seal('unit', unitPayload(worker.id, kid), stranger), init), {
      instanceOf: SignatureError,
      message: /unknown key/,
    })
  }
  // The stranger's signature under the trusted key's name does not verify either.
  const env = await seal('unit', unitPayload(worker.id, coordinator.keyId), stranger)
  await t.throwsAsync(verifyUnit({ ...env, signer: coordinator.publicKey }, init), {
    instanceOf: SignatureError,
    message: /signature does not verify/,
  })
})

test('verifyUnit - refuses a unit that names another trusted key id than the one that signed it', async (t) => {
  const { coordinator, worker, init } = await verifyFixture()
  const second = await generateIdentity(true)
  const both = {
    ...init,
    trusted: trustedKeysFrom([coordinator, second].map((k) => ({ keyId: k.keyId, publicKey: k.publicKey }))),
  }
  const env = await seal('unit', unitPayload(worker.id, second.keyId), coordinator)
  await t.throwsAsync(verifyUnit(env, both), {
    instanceOf: SignatureError,
    message: /not the key that signed/,
  })
})

test('verifyUnit - refuses an expired unit', async (t) => {
  const { coordinator, worker, init } = await verifyFixture()
  const env = await seal(
    'unit',
    unitPayload(worker.id, coordinator.keyId, { issuedAt: init.now - 60_000, expiresAt: init.now - 1 }),
    coordinator,
  )
  await t.throwsAsync(verifyUnit(env, init), { instanceOf: ExpiredError })
  // The deadline itself is already too late.
  const edge = await seal(
    'unit',
    unitPayload(worker.id, coordinator.keyId, { expiresAt: init.now }),
    coordinator,
  )
  await t.throwsAsync(verifyUnit(edge, init), { instanceOf: ExpiredError })
})

test('verifyUnit - refuses a unit addressed to another worker', async (t) => {
  const { coordinator, init } = await verifyFixture()
  const other = await generateIdentity(true)
  const env = await seal('unit', unitPayload(other.id, coordinator.keyId), coordinator)
  await t.throwsAsync(verifyUnit(env, init), { instanceOf: ProtocolError, message: /another worker/ })
})

test('verifyUnit - refuses a signature made for another kind of message', async (t) => {
  const { coordinator, worker, init } = await verifyFixture()
  // Signed by the trusted key, but under the `result` domain tag: never valid as a unit.
  const env = await seal('result', unitPayload(worker.id, coordinator.keyId), coordinator)
  await t.throwsAsync(verifyUnit({ ...env, kind: 'unit' }, init), {
    instanceOf: SignatureError,
    message: /signature does not verify/,
  })
})

test('verifyUnit - refuses unknown job kinds and bad inputs', async (t) => {
  const { coordinator, worker, init } = await verifyFixture()
  const unknownKind = await seal(
    'unit',
    unitPayload(worker.id, coordinator.keyId, { kind: 'nope@1' }),
    coordinator,
  )
  await t.throwsAsync(verifyUnit(unknownKind, init), { instanceOf: ProtocolError, message: /nope@1/ })
  const badInput = await seal(
    'unit',
    unitPayload(worker.id, coordinator.keyId, { input: { from: 10, to: 5 } }),
    coordinator,
  )
  await t.throwsAsync(verifyUnit(badInput, init), { message: /input\.from/ })
})
