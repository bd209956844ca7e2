// Units granted under one signature (shared/unit-batch.ts): every unit of a batch is still checked on
// its own. A tampered, swapped or moved unit is refused, a stranger cannot borrow the coordinator's
// signature for its own tree, and one unit taken out of the batch verifies alone (as a peer gets it).
import test from 'ava'
import { builtinJobTypes } from '../jobs/index.js'
import {
  decode,
  encode,
  generateIdentity,
  LIMITS,
  parseUnitEnvelope,
  ProtocolError,
  sealUnits,
  SignatureError,
  type Identity,
  type UnitEnvelope,
  type UnitPayload,
} from '../shared/index.js'
import { trustedKeysFrom, verifyUnit } from '../worker/index.js'
import type { VerifyInit } from '../worker/unit-verifier.js'
import { flipBit, unitPayload } from './helpers/protocol-fixtures.js'

interface Fixture {
  coordinator: Identity
  worker: Identity
  payloads: UnitPayload[]
  batch: UnitEnvelope[]
  init: VerifyInit
}

async function fixture(n = 5): Promise<Fixture> {
  const coordinator = await generateIdentity(true)
  const worker = await generateIdentity(true)
  const payloads = Array.from({ length: n }, (_, i) =>
    unitPayload(worker.id, coordinator.keyId, { input: { from: i * 1000, to: (i + 1) * 1000 } }),
  )
  const init: VerifyInit = {
    trusted: trustedKeysFrom([{ keyId: coordinator.keyId, publicKey: coordinator.publicKey }]),
    self: worker.id,
    jobTypes: builtinJobTypes,
    now: Date.now(),
  }
  return { coordinator, worker, payloads, batch: await sealUnits(payloads, coordinator), init }
}

/** As a unit arrives over the network: msgpack on the wire, parsed on receipt. */
const overTheWire = (env: UnitEnvelope): UnitEnvelope =>
  parseUnitEnvelope(decode(encode(env)), LIMITS.maxUnitBytes)

test('unit batch - every unit of a batch verifies, all under one signature', async (t) => {
  for (const n of [2, 3, 5, 8, 64]) {
    const f = await fixture(n)
    t.is(new Set(f.batch.map((e) => Buffer.from(e.sig).toString('hex'))).size, 1, `one signature for ${n}`)
    for (const [i, env] of f.batch.entries()) {
      t.deepEqual(await verifyUnit(overTheWire(env), f.init), f.payloads[i])
    }
  }
})

test('unit batch - a single unit is sealed alone, without a proof', async (t) => {
  const f = await fixture(1)
  t.is(f.batch[0]!.batch, undefined)
  t.deepEqual(await verifyUnit(f.batch[0]!, f.init), f.payloads[0])
})

test('unit batch - a tampered unit is refused and the others of its batch still verify', async (t) => {
  const f = await fixture(4)
  const bad = { ...f.batch[2]!, body: flipBit(f.batch[2]!.body) }
  await t.throwsAsync(verifyUnit(bad, f.init), {
    instanceOf: SignatureError,
    message: /not in the batch its coordinator signed/,
  })
  const other = encode({ ...f.payloads[2], input: { from: 0, to: 999_999 } })
  await t.throwsAsync(verifyUnit({ ...f.batch[2]!, body: other }, f.init), { instanceOf: SignatureError })
  for (const i of [0, 1, 3]) t.deepEqual(await verifyUnit(f.batch[i]!, f.init), f.payloads[i])
})

test('unit batch - a body under another unit’s proof, or a proof moved to another index, is refused', async (t) => {
  const f = await fixture(4)
  const [a, b] = [f.batch[0]!, f.batch[1]!]
  await t.throwsAsync(verifyUnit({ ...a, body: b.body }, f.init), { instanceOf: SignatureError })
  await t.throwsAsync(verifyUnit({ ...a, batch: { ...a.batch!, index: 1 } }, f.init), {
    instanceOf: SignatureError,
  })
  const path = [...a.batch!.path].reverse()
  await t.throwsAsync(verifyUnit({ ...a, batch: { ...a.batch!, path } }, f.init), {
    instanceOf: SignatureError,
  })
  await t.throwsAsync(verifyUnit({ ...a, batch: { ...a.batch!, path: a.batch!.path.slice(1) } }, f.init), {
    instanceOf: SignatureError,
    message: /does not fit its header/,
  })
})

test('unit batch - a padding position past the header’s count is never a unit', async (t) => {
  const f = await fixture(3)
  // Three units make a tree of four leaves; index 3 is padding.
  const last = f.batch[2]!
  await t.throwsAsync(verifyUnit({ ...last, batch: { ...last.batch!, index: 3 } }, f.init), {
    instanceOf: SignatureError,
    message: /does not fit its header/,
  })
})

test('unit batch - a stranger cannot pass its own tree under the coordinator’s signature', async (t) => {
  const f = await fixture(4)
  const stranger = await generateIdentity(true)
  const own = await sealUnits(
    f.payloads.map((p) => ({ ...p, input: { from: 0, to: 10 } })),
    stranger,
  )
  // Its own signature: an unknown key.
  await t.throwsAsync(verifyUnit(own[0]!, f.init), { instanceOf: SignatureError, message: /unknown key/ })
  // Its own tree under the coordinator's header and signature: the root does not match.
  const coordinatorKey = { signer: f.coordinator.publicKey, sig: f.batch[0]!.sig }
  const ownTree = {
    ...own[0]!,
    ...coordinatorKey,
    batch: { ...own[0]!.batch!, header: f.batch[0]!.batch!.header },
  }
  await t.throwsAsync(verifyUnit(ownTree, f.init), {
    instanceOf: SignatureError,
    message: /not in the batch its coordinator signed/,
  })
  // Its own header (its root) under the coordinator's signature: the signature does not verify.
  await t.throwsAsync(verifyUnit({ ...own[0]!, ...coordinatorKey }, f.init), {
    instanceOf: SignatureError,
    message: /does not verify/,
  })
  // A flipped signature bit over the right header.
  await t.throwsAsync(verifyUnit({ ...f.batch[1]!, sig: flipBit(f.batch[1]!.sig) }, f.init), {
    instanceOf: SignatureError,
  })
})

test('unit batch - one unit taken from a batch and handed to a peer verifies on its own', async (t) => {
  const f = await fixture(6)
  // The peer checks the unit as the giver's (exchange.ts): addressed to the giver, its proof intact.
  const peerSide: VerifyInit = { ...f.init, now: 0 }
  const handed = overTheWire(f.batch[4]!)
  t.deepEqual(await verifyUnit(handed, peerSide), f.payloads[4])
  t.is(handed.batch?.index, 4)
})

test('unit batch - malformed proofs are refused on receipt, naming the field', (t) => {
  const env = {
    v: 1,
    kind: 'unit',
    body: new Uint8Array(8),
    signer: new Uint8Array(32),
    sig: new Uint8Array(64),
  }
  const proof = { header: new Uint8Array(8), index: 0, path: [new Uint8Array(32)] }
  t.notThrows(() => parseUnitEnvelope({ ...env, batch: proof }, LIMITS.maxUnitBytes))
  t.throws(() => parseUnitEnvelope({ ...env, batch: { ...proof, path: [new Uint8Array(31)] } }, 1024), {
    instanceOf: ProtocolError,
    message: /batch.path\[0\]/,
  })
  const deep = Array.from({ length: 9 }, () => new Uint8Array(32))
  t.throws(() => parseUnitEnvelope({ ...env, batch: { ...proof, path: deep } }, 1024), {
    instanceOf: ProtocolError,
    message: /path has more than 8/,
  })
  t.throws(() => parseUnitEnvelope({ ...env, batch: { ...proof, index: -1 } }, 1024), {
    instanceOf: ProtocolError,
  })
  t.throws(() => parseUnitEnvelope({ ...env, batch: 'x' }, 1024), { instanceOf: ProtocolError })
})
