// Replies and data requests: the coordinator answers only the signer's own inbox, so a signed
// `module.get` or `chunk.get` whose reply subject points at the peers' broadcast subject or at another
// volunteer's inbox delivers nothing there (the amplification attack of a replayed module request);
// a data request is good once (its nonce), is served only for a lease the signer holds whose unit
// needs the data, and counts against a per-identity egress budget shared by all coordinators.
// Each attacker here is a raw volunteer connection speaking the protocol with its own key.
import test, { type ExecutionContext } from 'ava'
import type { NatsConnection } from '@nats-io/nats-core'
import type { Coordinator, CoordinatorTuning, Counters } from '../coordinator/index.js'
import {
  announceSubject,
  chunkHash,
  decode,
  decodeManifest,
  encode,
  inboxPrefixFor,
  isErrorReply,
  manifestOf,
  parseChunkReply,
  parseModuleReply,
  subjectsFor,
  type ErrorReply,
  type Identity,
  type Subjects,
} from '../shared/index.js'
import { startCluster, waitUntil, type Cluster } from './helpers/cluster.js'
import { rawRequest, sealWorkerRequest, takeLease } from './helpers/protocol-fixtures.js'
import { useServices } from './helpers/services.js'
import { rawVolunteer, type RawVolunteer } from './helpers/volunteer.js'
import { fnvModule, uploadOk, withCustomSection } from './helpers/wasm.js'

const services = useServices(test, { websocket: false })

const WASM = 'wasm@1'
/** A module close to the 4 MiB a coordinator serves whole: what the reflection attack asked for. */
const BIG_MODULE_BYTES = 3_800_000

async function cluster(
  t: ExecutionContext,
  opts: { coordinators?: number; tuning?: Partial<CoordinatorTuning> } = {},
): Promise<Cluster> {
  const c = await startCluster({ services: services(), ...opts })
  t.teardown(() => c.stop())
  return c
}

/** Counters summed over the cluster's coordinators. */
function total(c: Cluster, pick: (k: Counters) => number): number {
  return c.coordinators.reduce((n: number, co: Coordinator) => n + pick(co.counters), 0)
}

/** Upload a module and submit a one-record wasm job using it; returns the module's hash. */
async function moduleJob(c: Cluster, module: Uint8Array): Promise<string> {
  const hash = await uploadOk(c.coordinators[0]!.url, module)
  await c.api.submit({
    type: 'wasm',
    params: { module: hash, input: { records: ['reflect'], encoding: 'utf8' } },
    redundancy: { quorum: 1 },
  })
  return hash
}

/** Lease, as `v`, the unit of a job using module `hash` (units of other modules are taken too). */
async function leaseFor(v: RawVolunteer, subjects: Subjects, hash: string): Promise<string> {
  for (;;) {
    const unit = await takeLease(v.nats, subjects, v.identity, WASM)
    if ((unit.input as { module: string }).module === hash) return unit.replicaId
  }
}

const sealed = async (kind: 'module.get' | 'chunk.get', who: Identity, fields: Record<string, unknown>) =>
  encode(await sealWorkerRequest(kind, who, fields))

/** Count the bytes arriving on `subject` at `nc`. */
function counting(nc: NatsConnection, subject: string): { bytes: number; messages: number } {
  const seen = { bytes: 0, messages: 0 }
  nc.subscribe(subject, {
    callback: (_err, msg) => {
      seen.bytes += msg.data.length
      seen.messages++
    },
  })
  return seen
}

/**
 * A barrier: a signed request of `v`'s own, answered by the coordinator. NATS keeps one connection's
 * messages in order, so anything the coordinator sent to `v` before this answer has arrived.
 */
async function barrier(v: RawVolunteer, subjects: Subjects): Promise<void> {
  const req = await sealWorkerRequest('work.request', v.identity, { want: 1, accepts: ['none@1'] })
  const reply = await rawRequest(v.nats, subjects.workRequest, encode(req))
  if (isErrorReply(reply)) throw new Error(`barrier refused: ${reply.message}`)
}

test('reflection - data requests pointing their reply at peer.announce or another inbox deliver 0 bytes there, and are counted', async (t) => {
  const c = await cluster(t)
  const subjects = subjectsFor(c.subjectPrefix)
  const hash = await moduleJob(c, withCustomSection(await fnvModule(), BIG_MODULE_BYTES, 7))
  const attacker = await rawVolunteer(t, c)
  const replicaId = await leaseFor(attacker, subjects, hash)

  // What a peer would fetch honestly: the module's chunked form, and its manifest and first chunk.
  const ref = parseModuleReply(
    decode(
      (
        await attacker.nats.request(
          subjects.moduleGet,
          await sealed('module.get', attacker.identity, { hash, replicaId, chunked: true }),
          { timeout: 10_000 },
        )
      ).data,
    ),
  )
  if (!('root' in ref)) throw new Error('the large module did not come as a reference')
  const manifest = decodeManifest(
    parseChunkReply(
      await rawRequest(
        attacker.nats,
        subjects.chunkGet,
        await sealed('chunk.get', attacker.identity, { hash: ref.root, root: ref.root, replicaId }),
      ),
    ).bytes,
  )
  const chunk = chunkHash(manifest, 0)

  // The observers: a peer listening to every announcement shard, and a victim listening on its inbox.
  const peer = await rawVolunteer(t, c)
  const victim = await rawVolunteer(t, c)
  const atAnnounce = counting(peer.nats, `${subjects.peerAnnounce}.>`)
  // (The exact subject: the barrier's own answer comes to the victim's inbox too.)
  const victimInbox = `${inboxPrefixFor(victim.identity.id)}.reflected`
  const atVictim = counting(victim.nats, victimInbox)
  await Promise.all([peer.nats.flush(), victim.nats.flush()])

  const before = {
    refused: total(c, (k) => k.repliesRefused),
    handled: total(c, (k) => k.repliesRefused + k.modulesServed + k.chunksServed),
    moduleBytes: total(c, (k) => k.moduleBytesServed),
    chunkBytes: total(c, (k) => k.chunkBytesServed),
  }
  const targets = [announceSubject(subjects, peer.identity.id), victimInbox]
  let sent = 0
  let requests = 0
  for (const reply of targets) {
    // Eight signed requests each for the whole module and for a chunk: fresh nonces, a lease the
    // attacker holds, everything valid but the reply subject.
    for (let i = 0; i < 8; i++) {
      const pairs: [string, Uint8Array][] = [
        [subjects.moduleGet, await sealed('module.get', attacker.identity, { hash, replicaId })],
        [
          subjects.chunkGet,
          await sealed('chunk.get', attacker.identity, { hash: chunk, root: ref.root, replicaId }),
        ],
      ]
      for (const [subject, data] of pairs) {
        attacker.nats.publish(subject, data, { reply })
        sent += data.length
        requests++
      }
    }
  }
  await attacker.nats.flush()
  await waitUntil(
    'every reflected request to be handled',
    () => total(c, (k) => k.repliesRefused + k.modulesServed + k.chunksServed) - before.handled >= requests,
    30_000,
  )
  await Promise.all([barrier(peer, subjects), barrier(victim, subjects)])

  const delivered = atAnnounce.bytes + atVictim.bytes
  t.log(
    `${requests} signed requests (${sent} bytes) with foreign reply subjects: ${delivered} bytes reached them ` +
      `(amplification ${(delivered / sent).toFixed(3)}; ${atAnnounce.bytes} on the announcement shards, ` +
      `${atVictim.bytes} in another volunteer's inbox)`,
  )
  t.is(atAnnounce.bytes, 0, 'nothing reached the announcement shards')
  t.is(atVictim.bytes, 0, "nothing reached the victim's inbox")
  t.is(total(c, (k) => k.repliesRefused) - before.refused, requests, 'every refusal is counted')
  t.is(
    total(c, (k) => k.moduleBytesServed),
    before.moduleBytes,
    'no module was read for them',
  )
  t.is(
    total(c, (k) => k.chunkBytesServed),
    before.chunkBytes,
    'no chunk was read for them',
  )

  // The same request to the attacker's own inbox is served: only the reply subject was wrong.
  const own = parseModuleReply(
    decode(
      (
        await attacker.nats.request(
          subjects.moduleGet,
          await sealed('module.get', attacker.identity, { hash, replicaId }),
          {
            timeout: 10_000,
          },
        )
      ).data,
    ),
  )
  t.true('bytes' in own && own.bytes.length > BIG_MODULE_BYTES)
})

/** A data request's answer, decoded (an error reply or the data). */
async function ask(v: RawVolunteer, subject: string, data: Uint8Array): Promise<Record<string, unknown>> {
  return (await rawRequest(v.nats, subject, data, 10_000)) as Record<string, unknown>
}

function refused(t: ExecutionContext, reply: Record<string, unknown>, message: RegExp, what: string): void {
  t.true(isErrorReply(reply), `${what}: ${JSON.stringify(reply).slice(0, 200)}`)
  t.like(reply, { type: 'error', code: 'bad-request' }, what)
  t.regex(String((reply as unknown as ErrorReply).message), message, what)
}

test('reflection - a replayed module.get or chunk.get (same nonce) is refused', async (t) => {
  const c = await cluster(t)
  const subjects = subjectsFor(c.subjectPrefix)
  const bytes = withCustomSection(await fnvModule(), 300_000, 3)
  const hash = await moduleJob(c, bytes)
  const w = await rawVolunteer(t, c)
  const replicaId = await leaseFor(w, subjects, hash)
  const { root } = await manifestOf(bytes)

  const getModule = await sealed('module.get', w.identity, { hash, replicaId })
  t.true('bytes' in parseModuleReply(await ask(w, subjects.moduleGet, getModule)), 'served once')
  const getRef = await sealed('module.get', w.identity, { hash, replicaId, chunked: true })
  t.like(parseModuleReply(await ask(w, subjects.moduleGet, getRef)), { root })
  const getManifest = await sealed('chunk.get', w.identity, { hash: root, root, replicaId })
  t.is(parseChunkReply(await ask(w, subjects.chunkGet, getManifest)).hash, root)

  const served = total(c, (k) => k.moduleBytesServed + k.chunkBytesServed)
  const before = total(c, (k) => k.dataRequestsRefused)
  for (const [subject, data, what] of [
    [subjects.moduleGet, getModule, 'module.get'],
    [subjects.moduleGet, getRef, 'module.get chunked'],
    [subjects.chunkGet, getManifest, 'chunk.get'],
  ] as const) {
    refused(t, await ask(w, subject, data), /replayed/, `${what} replayed`)
  }
  t.is(total(c, (k) => k.dataRequestsRefused) - before, 3, 'each replay is counted')
  t.is(
    total(c, (k) => k.moduleBytesServed + k.chunkBytesServed),
    served,
    'nothing served to a replay',
  )
})

test('reflection - data is served only for a live lease of the requester whose unit needs it', async (t) => {
  const c = await cluster(t)
  const subjects = subjectsFor(c.subjectPrefix)
  const mine = withCustomSection(await fnvModule(), 300_000, 4)
  const hash = await moduleJob(c, mine)
  const other = withCustomSection(await fnvModule(), 300_000, 5)
  const otherHash = await uploadOk(c.coordinators[0]!.url, other)
  const dataset = new Uint8Array(200_000).fill(9)
  const upload = await fetch(`${c.coordinators[0]!.url}/v1/datasets`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    body: dataset,
  })
  t.is(upload.status, 201)
  const w = await rawVolunteer(t, c)
  const replicaId = await leaseFor(w, subjects, hash)
  const { root, manifest } = await manifestOf(mine)
  const datasetRoot = (await manifestOf(dataset)).root
  // A second worker's lease of another unit of the same job.
  await moduleJob(c, mine)
  const second = await rawVolunteer(t, c)
  const othersReplica = await leaseFor(second, subjects, hash)

  const served = total(c, (k) => k.moduleBytesServed + k.chunkBytesServed)
  const before = total(c, (k) => k.dataRequestsRefused)
  const cases: [string, string, Record<string, unknown>, RegExp][] = [
    [
      'a module no unit of its leases uses',
      subjects.moduleGet,
      { hash: otherHash, replicaId },
      /does not use module/,
    ],
    [
      "another worker's replica",
      subjects.moduleGet,
      { hash, replicaId: othersReplica },
      /not leased to this worker/,
    ],
    ['a replica that does not exist', subjects.moduleGet, { hash, replicaId: 'no-such:0:r1' }, /not leased/],
    [
      'a dataset its unit does not read',
      subjects.chunkGet,
      { hash: datasetRoot, root: datasetRoot, replicaId },
      /does not read content/,
    ],
    [
      "a chunk not in the content's manifest",
      subjects.chunkGet,
      { hash: (await manifestOf(dataset)).root, root, replicaId },
      /is not part of content/,
    ],
    [
      'a chunk of its content named under the wrong root',
      subjects.chunkGet,
      { hash: chunkHash(manifest, 0), root: datasetRoot, replicaId },
      /does not read content/,
    ],
  ]
  for (const [what, subject, fields, message] of cases) {
    const kind = subject === subjects.moduleGet ? 'module.get' : 'chunk.get'
    refused(t, await ask(w, subject, await sealed(kind, w.identity, fields)), message, what)
  }
  // Once the lease is handed back, its replica no longer opens anything.
  const release = await sealWorkerRequest('lease.release', w.identity, {
    replicaIds: [replicaId],
    reason: 'test',
  })
  t.like(await ask(w, subjects.leaseRelease, encode(release)), { type: 'lease.released', released: 1 })
  refused(
    t,
    await ask(w, subjects.moduleGet, await sealed('module.get', w.identity, { hash, replicaId })),
    /not leased to this worker/,
    'a released lease',
  )
  t.is(total(c, (k) => k.dataRequestsRefused) - before, cases.length + 1, 'each refusal is counted')
  t.is(
    total(c, (k) => k.moduleBytesServed + k.chunkBytesServed),
    served,
    'nothing was served',
  )

  // The holder of the other lease gets the module and its chunks.
  const ok = parseModuleReply(
    await ask(
      second,
      subjects.moduleGet,
      await sealed('module.get', second.identity, { hash, replicaId: othersReplica }),
    ),
  )
  t.true('bytes' in ok)
  const c0 = chunkHash(manifest, 0)
  const chunk = parseChunkReply(
    await ask(
      second,
      subjects.chunkGet,
      await sealed('chunk.get', second.identity, { hash: c0, root, replicaId: othersReplica }),
    ),
  )
  t.is(chunk.hash, c0)
})

test('reflection - past its egress budget an identity is told when to retry, on every coordinator', async (t) => {
  // The smallest budget: 64 KiB a minute, one bucket in Redis for both coordinators.
  const c = await cluster(t, { coordinators: 2, tuning: { egressBytesPerMinute: 64 * 1024 } })
  const subjects = subjectsFor(c.subjectPrefix)
  const bytes = withCustomSection(await fnvModule(), 300_000, 6)
  const hash = await moduleJob(c, bytes)
  const w = await rawVolunteer(t, c)
  const replicaId = await leaseFor(w, subjects, hash)
  const { root } = await manifestOf(bytes)

  // The bucket holds 64 KiB: the first module (300 kB) is served and leaves it in debt.
  const first = parseModuleReply(
    await ask(w, subjects.moduleGet, await sealed('module.get', w.identity, { hash, replicaId })),
  )
  t.true('bytes' in first)
  const before = total(c, (k) => k.egressRefused)
  const served = total(c, (k) => k.moduleBytesServed + k.chunkBytesServed)
  for (let i = 0; i < 4; i++) {
    const [subject, kind, fields] =
      i % 2 === 0
        ? ([subjects.moduleGet, 'module.get', { hash, replicaId }] as const)
        : ([subjects.chunkGet, 'chunk.get', { hash: root, root, replicaId }] as const)
    const reply = await ask(w, subject, await sealed(kind, w.identity, fields))
    t.like(reply, { type: 'error', code: 'over-budget' }, kind)
    // The debt (about 236 kB at 64 KiB a minute) takes minutes to repay.
    t.true(Number(reply['retryAfterMs']) > 60_000, `retry after ${String(reply['retryAfterMs'])} ms`)
  }
  t.is(total(c, (k) => k.egressRefused) - before, 4, 'each refusal is counted')
  t.is(
    total(c, (k) => k.moduleBytesServed + k.chunkBytesServed),
    served,
  )

  // Another identity has a budget of its own.
  const other = await rawVolunteer(t, c)
  await moduleJob(c, bytes)
  const otherReplica = await leaseFor(other, subjects, hash)
  t.true(
    'bytes' in
      parseModuleReply(
        await ask(
          other,
          subjects.moduleGet,
          await sealed('module.get', other.identity, { hash, replicaId: otherReplica }),
        ),
      ),
  )
})
