// WebAssembly modules larger than one chunk travel as chunks, like datasets: the upload stores them
// chunked too, `module.get` answers a worker that exchanges with peers with the reference of the
// chunked form, and the workers fetch the chunks from each other, so the coordinator serves such a
// module about once however many workers run it. A worker without peer exchange gets it whole, small
// modules still come as bytes, modules stored before chunking are chunked when first asked for, and a
// peer serving corrupted module chunks is caught while the job completes.
import test from 'ava'
import {
  CHUNK_BYTES,
  chunkCount,
  generateIdentity,
  LIMITS,
  manifestOf,
  parseModuleGet,
  parseModuleReply,
  ProtocolError,
  sha256Hex,
  subjectsFor,
} from '../shared/index.js'
import { createCoordinatorClient, createPeerOverlay, type Peering } from '../worker/index.js'
import {
  startCluster,
  testLogger,
  waitForJob,
  waitUntil,
  type Cluster,
  type TestWorker,
} from './helpers/cluster.js'
import { takeLease } from './helpers/protocol-fixtures.js'
import { useServices } from './helpers/services.js'
import { connectVolunteer, rawVolunteer } from './helpers/volunteer.js'
import { fnv1aBase64, fnvModule, uploadOk, withCustomSection } from './helpers/wasm.js'

const services = useServices(test, { websocket: false })

/** The FNV example padded with a custom section to just over five chunks. */
const largeModule = async (seed = 1): Promise<Uint8Array> =>
  withCustomSection(await fnvModule(), 5 * CHUNK_BYTES, seed)

const WORDS = ['volunteer', 'computing', 'with', 'WebAssembly', 'in', 'chunks']

/** A wasm job hashing WORDS with `module`, one record per unit. */
async function submitFnv(cluster: Cluster, module: string, quorum: number) {
  return cluster.api.submit({
    type: 'wasm',
    params: { module, input: { records: WORDS, encoding: 'utf8' } },
    redundancy: { quorum },
  })
}

async function expectFnvResult(t: import('ava').ExecutionContext, cluster: Cluster, jobId: string) {
  const done = await waitForJob(cluster.api, jobId)
  t.is(done.state, 'completed', JSON.stringify(done))
  t.deepEqual((await cluster.api.result(jobId)).result, {
    records: WORDS.length,
    outputs: WORDS.map(fnv1aBase64),
  })
}

/** A worker's peer side (the workers of these tests exchange with peers unless told not to). */
function peering(w: TestWorker): Peering {
  const p = w.daemon.peering
  if (p === undefined) throw new Error('this worker has peer exchange turned off')
  return p
}

test('chunks - a module reply carries either bytes or a root and a size, never both', (t) => {
  const base = { type: 'module', v: 1, hash: 'a'.repeat(64) }
  const bytes = new Uint8Array(8)
  const ref = { root: 'b'.repeat(64), size: 5 * CHUNK_BYTES }
  t.deepEqual(parseModuleReply({ ...base, bytes }), { ...base, bytes })
  t.deepEqual(parseModuleReply({ ...base, ...ref }), { ...base, ...ref })
  const bad = [
    base,
    { ...base, bytes, ...ref },
    { ...base, bytes, size: ref.size },
    { ...base, root: ref.root },
    { ...base, ...ref, size: LIMITS.maxModuleBytes + 1 },
  ]
  for (const reply of bad) t.throws(() => parseModuleReply(reply), { instanceOf: ProtocolError })
  const get = {
    type: 'module.get',
    v: 1,
    worker: 'w'.repeat(43),
    at: 1,
    nonce: 'n'.repeat(16),
    hash: base.hash,
    replicaId: 'j:0:r1',
  }
  t.is(parseModuleGet(get).chunked, undefined)
  t.throws(() => parseModuleGet({ ...get, replicaId: undefined }), { instanceOf: ProtocolError })
  t.is(parseModuleGet({ ...get, chunked: true }).chunked, true)
  t.throws(() => parseModuleGet({ ...get, chunked: 'yes' }), { instanceOf: ProtocolError })
})

test('chunks - a large module reaches three daemons as chunks, mostly from each other', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const workers = await Promise.all([1, 2, 3].map(() => cluster.addWorker()))
  await waitUntil('the workers know each other', () =>
    workers.every((w) => peering(w).overlay.peers().length === 2),
  )
  const url = cluster.coordinators[0]!.url
  const bytes = await largeModule()
  const hash = await uploadOk(url, bytes)
  const { root } = await manifestOf(bytes)
  const info = (await (await fetch(`${url}/v1/modules/${hash}/info`)).json()) as Record<string, unknown>
  t.is(info['root'], root, 'the upload stored the module as chunks too')

  const job = await submitFnv(cluster, hash, 2)
  await expectFnvResult(t, cluster, job.id)
  const counters = cluster.coordinators[0]!.counters
  const fetched = workers.filter((w) => peering(w).content.get(root) !== undefined).length
  const fromPeers = workers.map((w) => peering(w).fetcher.stats.bytesFromPeers)
  t.log(
    `${fetched} workers got the ${bytes.length}-byte module; the coordinator served ${counters.chunkBytesServed} bytes of chunks, peers ${fromPeers.join(' + ')}`,
  )
  t.is(counters.moduleBytesServed, 0, 'no worker got the module whole')
  t.true(fetched >= 2)
  t.true(
    counters.chunkBytesServed < 1.5 * bytes.length,
    `coordinator served ${counters.chunkBytesServed} bytes, not ${fetched} × ${bytes.length}`,
  )
  t.true(
    fromPeers.some((n) => n > 0),
    'at least one worker got module chunks from a peer',
  )
})

test('chunks - without peer exchange a worker gets the module whole; small modules come as bytes; old modules are chunked when asked for', async (t) => {
  // The asker below keeps every lease it takes (units of earlier jobs too): more than a new identity's
  // lease cap, which is not what this test is about.
  const cluster = await startCluster({ services: services(), tuning: { leaseCapBase: 64 } })
  t.teardown(() => cluster.stop())
  const coordinator = cluster.coordinators[0]!
  const lone = await cluster.addWorker({ peers: false })
  const bytes = await largeModule(2)
  const hash = await uploadOk(coordinator.url, bytes)
  const job = await submitFnv(cluster, hash, 1)
  await expectFnvResult(t, cluster, job.id)
  t.is(coordinator.counters.moduleBytesServed, bytes.length, 'the module came whole, once')
  t.is(coordinator.counters.chunkBytesServed, 0)

  // What module.get answers, asked directly by a volunteer holding a lease of a unit that uses the
  // module (coordinators serve modules for such leases only).
  await lone.stop()
  const subjects = subjectsFor(cluster.subjectPrefix)
  const { identity: asker, nats } = await rawVolunteer(t, cluster)
  const leases = new Map<string, string>()
  /** Lease a unit of a new job using `module` (units of earlier jobs come first: take those too). */
  const lease = async (module: string): Promise<void> => {
    await submitFnv(cluster, module, 1)
    for (;;) {
      const unit = await takeLease(nats, subjects, asker, 'wasm@1')
      if ((unit.input as { module: string }).module !== module) continue
      leases.set(module, unit.replicaId)
      return
    }
  }
  const client = createCoordinatorClient({
    nats,
    identity: asker,
    subjects,
    leaseFor: (need) => ('module' in need ? leases.get(need.module) : undefined),
  })
  await lease(hash)
  const { root } = await manifestOf(bytes)
  t.deepEqual(await client.getModule(hash, true), { root, size: bytes.length })
  const same = (got: Uint8Array | object, want: Uint8Array): boolean =>
    got instanceof Uint8Array && Buffer.compare(got, want) === 0
  t.true(same(await client.getModule(hash), bytes), 'whole when not asked for chunks')
  const small = await fnvModule()
  const smallHash = await uploadOk(coordinator.url, small)
  await lease(smallHash)
  t.true(same(await client.getModule(smallHash, true), small), 'a module of one chunk comes as bytes')

  // A module stored before modules were chunked (no root in its meta) is chunked when first asked for.
  const old = await largeModule(3)
  const oldHash = await sha256Hex(old)
  await coordinator.modules.put(oldHash, old, { size: String(old.length), owner: 'anonymous' })
  // Held by the jobs' owner (jobs may name only content their owner holds).
  await coordinator.uploads.hold('module', oldHash, 'anonymous', old.length, null, Date.now() + 3600_000)
  t.is((await coordinator.modules.meta(oldHash))?.['root'], undefined)
  await lease(oldHash)
  const oldRoot = (await manifestOf(old)).root
  t.deepEqual(await client.getModule(oldHash, true), { root: oldRoot, size: old.length })
  t.is((await coordinator.modules.meta(oldHash))?.['root'], oldRoot)
  t.deepEqual(await coordinator.datasets.manifest(oldRoot), (await manifestOf(old)).encoded)
})

test('chunks - a peer serving corrupted module chunks is caught; the module is intact and the job completes', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const bytes = await largeModule(4)
  const hash = await uploadOk(cluster.coordinators[0]!.url, bytes)
  const { root, encoded } = await manifestOf(bytes)

  // The liar claims every chunk of the module and serves the genuine manifest but flipped chunk bytes.
  const liar = await generateIdentity(false)
  const nats = await connectVolunteer(cluster.volunteerAccess, liar)
  t.teardown(() => nats.drain())
  const overlay = createPeerOverlay({
    nats,
    identity: liar,
    subjects: subjectsFor(cluster.subjectPrefix),
    log: testLogger('liar').log,
    announceMs: 200,
    state: () => ({
      threads: 1,
      running: 0,
      buffered: 0,
      free: 0,
      accepts: [],
      has: [{ root, bits: new Uint8Array(Math.ceil(chunkCount(bytes.length) / 8)).fill(0xff) }],
    }),
  })
  let corruptServed = 0
  overlay.handle('chunk.get', (msg) => {
    if (msg.type !== 'chunk.get') return Promise.resolve(undefined)
    if (msg.hash === root) return Promise.resolve({ type: 'chunk', hash: msg.hash, bytes: encoded })
    corruptServed++
    return Promise.resolve({ type: 'chunk', hash: msg.hash, bytes: new Uint8Array(CHUNK_BYTES).fill(7) })
  })
  await overlay.start()
  t.teardown(() => overlay.stop())

  const w = await cluster.addWorker()
  await waitUntil('the worker hears the liar', () =>
    peering(w)
      .overlay.peers()
      .some((p) => p.id === liar.id),
  )
  const job = await submitFnv(cluster, hash, 1)
  await expectFnvResult(t, cluster, job.id)
  const stats = peering(w).fetcher.stats
  t.true(stats.corruptChunks >= 3, `${stats.corruptChunks} corrupt chunks caught`)
  t.true(corruptServed >= 3)
  t.true(peering(w).overlay.isBanned(liar.id))
  t.is(stats.chunksFromCoordinator, chunkCount(bytes.length), 'every chunk came from the coordinator instead')
  t.is(
    cluster.coordinators[0]!.counters.moduleBytesServed,
    0,
    'the chunks were enough: no whole-module fallback',
  )
  t.is(w.daemon.stats.unitsFailed, 0)
})
