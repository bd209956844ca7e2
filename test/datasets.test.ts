// Datasets: POST /v1/datasets cuts a stream into SHA-256-named chunks whose manifest root is the one
// `manifestOf` computes (201, then 200 for the same bytes); info and data round trip; 413 (declared or
// streamed, leaving no chunk behind), 415, 401 and 404 are problem+json; an upload outlasting the
// pending-chunk expiry is refused; workers fetch chunks and manifests over NATS (`chunk.get`), counted
// to the byte; planning finds a dataset by its root; `cohort upload` streams a file.
import test from 'ava'
import { Redis } from 'ioredis'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createDatasetStore } from '../coordinator/content/dataset-store.js'
import { createContentStore } from '../coordinator/modules/content-store.js'
import { loadPlanResources } from '../coordinator/planner/planner.js'
import {
  chunkCount,
  chunkHash,
  decode,
  decodeManifest,
  encode,
  ExpiredError,
  manifestOf,
  parseChunkReply,
  sha256Hex,
  subjectsFor,
  generateIdentity,
  type AnyJobType,
} from '../shared/index.js'
import { apiKeyDigest as keyDigest, type Counters } from '../coordinator/index.js'
import { spawnCohort, startCluster, waitUntil, type Cluster } from './helpers/cluster.js'
import { flipBit, sealWorkerRequest, takeLease } from './helpers/protocol-fixtures.js'
import { uniquePrefix, useServices } from './helpers/services.js'
import { rawVolunteer } from './helpers/volunteer.js'

const services = useServices(test)
const OCTETS = 'application/octet-stream'

interface Answer {
  status: number
  type: string
  body: Record<string, unknown>
}

/** POST /v1/datasets with `body` (bytes, sent with a Content-Length, or a stream, sent chunked). */
async function upload(
  url: string,
  body: Uint8Array | ReadableStream<Uint8Array>,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const r = await fetch(`${url}/v1/datasets`, {
    method: 'POST',
    headers: { 'content-type': OCTETS, ...headers },
    body: body as BodyInit,
    duplex: 'half',
  } as RequestInit)
  return {
    status: r.status,
    type: r.headers.get('content-type') ?? '',
    body: (await r.json()) as Record<string, unknown>,
  }
}

/** `bytes` as a stream of `piece`-byte parts, so chunk boundaries fall inside parts. */
function streamOf(bytes: Uint8Array, piece: number): ReadableStream<Uint8Array> {
  let at = 0
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.length) return controller.close()
      controller.enqueue(bytes.slice(at, at + piece))
      at += piece
    },
  })
}

async function stats(url: string): Promise<Counters> {
  return ((await (await fetch(`${url}/v1/stats`)).json()) as { counters: Counters }).counters
}

function redisOf(t: { teardown(fn: () => unknown): void }): Redis {
  const redis = new Redis(services().redisUrl)
  t.teardown(() => redis.quit())
  return redis
}

async function cluster(t: { teardown(fn: () => unknown): void }, tuning = {}): Promise<Cluster> {
  const c = await startCluster({ services: services(), tuning })
  t.teardown(() => c.stop())
  return c
}

test('datasets - an upload is stored as chunks whose root is what manifestOf computes, and read back', async (t) => {
  const c = await cluster(t)
  const url = c.coordinators[0]!.url
  const bytes = new Uint8Array(randomBytes(3 * 1024 * 1024 + 12_345))
  const expected = await manifestOf(bytes)
  const first = await upload(url, bytes)
  t.is(first.status, 201, JSON.stringify(first.body))
  t.like(first.body, {
    root: expected.root,
    size: bytes.length,
    chunks: chunkCount(bytes.length),
    chunkSize: 64 * 1024,
    links: { self: `/v1/datasets/${expected.root}`, data: `/v1/datasets/${expected.root}/data` },
  })
  // The same bytes again, streamed in parts that do not line up with chunks: already stored.
  const again = await upload(url, streamOf(bytes, 10_000))
  t.is(again.status, 200)
  t.is(again.body['root'], expected.root)

  const info = await fetch(`${url}/v1/datasets/${expected.root}`)
  t.is(info.status, 200)
  t.like(await info.json(), { root: expected.root, size: bytes.length, chunks: 49 })
  const data = await fetch(`${url}/v1/datasets/${expected.root}/data`)
  t.is(data.status, 200)
  t.is(data.headers.get('content-type'), OCTETS)
  t.is(data.headers.get('content-length'), String(bytes.length))
  t.true(Buffer.from(await data.arrayBuffer()).equals(bytes))

  // In Redis: the encoded manifest under its root, every chunk under its hash, all permanent.
  const redis = redisOf(t)
  t.true((await redis.getBuffer(`${c.redisPrefix}manifest:${expected.root}`))!.equals(expected.encoded))
  for (let i = 0; i < chunkCount(bytes.length); i++)
    t.is(await redis.pttl(`${c.redisPrefix}chunk:${chunkHash(expected.manifest, i)}`), -1)
})

test('datasets - refusals are problem+json: 413 declared or streamed (no chunk kept), 415, 401, 404', async (t) => {
  const key = 'k'.repeat(32)
  const c = await cluster(t, {
    maxDatasetBytes: 128 * 1024,
    apiKeys: [{ name: 'k', role: 'submitter', sha256: keyDigest(key) }],
    anonymous: false,
  })
  const url = c.coordinators[0]!.url
  const auth = { authorization: `Bearer ${key}` }
  const problem = (a: Answer, status: number, type: string) => {
    t.is(a.status, status, JSON.stringify(a.body))
    t.regex(a.type, /application\/problem\+json/)
    t.is(a.body['type'], `urn:cohort:problem:${type}`)
  }
  problem(await upload(url, new Uint8Array(10)), 401, 'unauthorized')
  problem(await upload(url, new Uint8Array(128 * 1024 + 1), auth), 413, 'too-large')
  const big = new Uint8Array(randomBytes(4 * 64 * 1024))
  problem(await upload(url, streamOf(big, 64 * 1024), auth), 413, 'too-large')
  problem(
    await upload(url, new Uint8Array(10), { ...auth, 'content-type': 'text/plain' }),
    415,
    'unsupported-media-type',
  )
  // The streamed upload wrote its first chunks before it was refused: they expire, none is kept.
  const redis = redisOf(t)
  const chunkKeys = await redis.keys(`${c.redisPrefix}chunk:*`)
  t.true(chunkKeys.length >= 1)
  for (const k of chunkKeys) t.true((await redis.pttl(k)) > 0, `${k} expires`)
  t.deepEqual(await redis.keys(`${c.redisPrefix}manifest:*`), [])

  // Exactly at the limit is accepted; empty content is one empty chunk, as manifestOf has it.
  const atLimit = big.subarray(0, 128 * 1024)
  t.is((await upload(url, atLimit, auth)).body['root'], (await manifestOf(atLimit)).root)
  const empty = await upload(url, new Uint8Array(0), auth)
  t.is(empty.status, 201)
  t.like(empty.body, { root: (await manifestOf(new Uint8Array(0))).root, size: 0, chunks: 1 })
  t.is(
    (
      await (
        await fetch(`${url}/v1/datasets/${String(empty.body['root'])}/data`, { headers: auth })
      ).arrayBuffer()
    ).byteLength,
    0,
  )

  const get = async (path: string) => {
    const r = await fetch(`${url}/v1/datasets/${path}`, { headers: auth })
    return {
      status: r.status,
      type: r.headers.get('content-type') ?? '',
      body: (await r.json()) as Record<string, unknown>,
    }
  }
  problem(await get('0'.repeat(64)), 404, 'dataset-not-found')
  problem(await get(`${'0'.repeat(64)}/data`), 404, 'dataset-not-found')
  problem(await get('not-a-root'), 404, 'dataset-not-found')
  problem(await get('ABCDEF'.repeat(10) + 'ABCD'), 404, 'dataset-not-found')
  // A chunk is not a dataset.
  const chunk = chunkHash((await manifestOf(atLimit)).manifest, 0)
  problem(await get(chunk), 404, 'dataset-not-found')
})

test('datasets - chunk.get serves chunks and manifests to a signed volunteer and counts the bytes served', async (t) => {
  const c = await cluster(t)
  const url = c.coordinators[0]!.url
  const bytes = new Uint8Array(randomBytes(200_000))
  const { root, manifest, encoded } = await manifestOf(bytes)
  t.is((await upload(url, bytes)).status, 201)
  // A volunteer, with the credentials it signed up for; replies come to its own inbox.
  const { identity, nats } = await rawVolunteer(t, c)
  const subjects = subjectsFor(c.subjectPrefix)
  const subject = subjects.chunkGet
  // Chunks are served for a lease whose unit reads the dataset: a knn unit over it.
  const params = { dataset: root, dim: 8, k: 1, queries: { count: 1, seed: 1 } }
  await c.api.submit({ type: 'knn', params, redundancy: { quorum: 1 } })
  const { replicaId } = await takeLease(nats, subjects, identity, 'knn@1')
  const ask = async (envelope: unknown) =>
    decode((await nats.request(subject, encode(envelope), { timeout: 5_000 })).data) as Record<
      string,
      unknown
    >
  const get = async (hash: string) =>
    ask(await sealWorkerRequest('chunk.get', identity, { hash, root, replicaId }))

  const before = await stats(url)
  const hashes = [root, ...Array.from({ length: chunkCount(bytes.length) }, (_, i) => chunkHash(manifest, i))]
  let served = 0
  for (const hash of hashes) {
    const reply = parseChunkReply(await get(hash))
    t.is(reply.hash, hash)
    t.is(await sha256Hex(reply.bytes), hash, 'the bytes hash to what was asked')
    served += reply.bytes.length
  }
  t.is(served, encoded.length + bytes.length)
  const got = decodeManifest(parseChunkReply(await get(root)).bytes)
  t.deepEqual({ ...got, chunks: new Uint8Array(got.chunks) }, manifest)
  const after = await stats(url)
  t.is(after.chunksServed - before.chunksServed, hashes.length + 1)
  t.is(after.chunkBytesServed - before.chunkBytesServed, served + encoded.length)

  // Refusals: an error reply, counted as malformed, nothing served.
  const good = await sealWorkerRequest('chunk.get', identity, { hash: root, root, replicaId })
  t.like(await ask({ ...good, sig: flipBit(good.sig) }), { type: 'error', code: 'bad-signature' })
  const unknown = await get('e'.repeat(64))
  t.like(unknown, { type: 'error', code: 'bad-request' })
  t.regex(String(unknown['message']), new RegExp(`chunk e{64} is not part of content ${root}`))
  const other = await generateIdentity(true)
  t.like(
    await ask(
      await sealWorkerRequest('chunk.get', identity, { hash: root, root, replicaId }, { worker: other.id }),
    ),
    { type: 'error', code: 'bad-request' },
  )
  t.like(await get('not-hex'), { type: 'error', code: 'bad-request' })
  const last = await stats(url)
  t.is(last.chunksServed, after.chunksServed)
  t.is(last.chunkBytesServed, after.chunkBytesServed)
  t.is(last.malformed - after.malformed, 4)
})

test('datasets - planning finds a dataset by its root and gives the job type the encoded manifest', async (t) => {
  const c = await cluster(t)
  const url = c.coordinators[0]!.url
  const bytes = new Uint8Array(randomBytes(100_000))
  const { root, manifest, encoded } = await manifestOf(bytes)
  await upload(url, bytes)
  const blob = new TextEncoder().encode('a blob\n')
  t.is(
    (await fetch(`${url}/v1/blobs`, { method: 'POST', headers: { 'content-type': OCTETS }, body: blob }))
      .status,
    201,
  )
  const blobs = createContentStore({ redis: redisOf(t), prefix: c.redisPrefix, namespace: 'blob' })
  const names = [root, await sha256Hex(blob), chunkHash(manifest, 0), 'f'.repeat(64)]
  const jobType = { planResources: () => names } as unknown as AnyJobType
  const found = await loadPlanResources(jobType, {}, { blobs, datasets: c.coordinators[0]!.datasets })
  t.deepEqual([...found.keys()], names.slice(0, 2), 'a chunk is not a dataset; an unknown hash is left out')
  t.deepEqual(found.get(root), encoded)
  t.deepEqual(decodeManifest(found.get(root)!), manifest)
  t.deepEqual(found.get(names[1]!), blob)
})

test('datasets - cohort upload streams a file and prints its root, size and chunks', async (t) => {
  const c = await cluster(t)
  const url = c.coordinators[0]!.url
  const bytes = new Uint8Array(randomBytes(150_000))
  const file = join(services().dataDir, `${uniquePrefix('upload')}.bin`)
  await writeFile(file, bytes)
  const { root } = await manifestOf(bytes)
  const run = async (...args: string[]) => {
    const child = spawnCohort(['upload', ...args, '--url', url], { COHORT_API_KEY: '' })
    const [code] = (await once(child.child, 'close')) as [number | null]
    return { code, lines: child.lines }
  }
  const json = await run(file, '--json')
  t.is(json.code, 0, json.lines.join('\n'))
  const answer = JSON.parse(json.lines.find((l) => l.startsWith('{')) ?? '{}') as Record<string, unknown>
  t.like(answer, { root, size: bytes.length, chunks: 3, chunkSize: 64 * 1024 })
  const plain = await run(file)
  t.is(plain.code, 0)
  t.true(
    plain.lines.some((l) => l.startsWith(`${root}  150000 bytes  3 chunks`)),
    plain.lines.join('\n'),
  )
  const missing = await run(join(services().dataDir, 'no-such-file'))
  t.is(missing.code, 1)
  t.true(
    missing.lines.some((l) => /cannot read .*no-such-file/.test(l)),
    missing.lines.join('\n'),
  )
})

test('datasets - an upload whose first chunks expired before it ended is refused, never committed with a hole', async (t) => {
  const redis = redisOf(t)
  const prefix = `${uniquePrefix('d')}:`
  const store = createDatasetStore({ redis, prefix, pendingTtlMs: 100 })
  const first = new Uint8Array(randomBytes(64 * 1024))
  const firstKey = `${prefix}chunk:${await sha256Hex(first)}`
  async function* slow() {
    yield first
    await waitUntil('the first chunk expired', async () => (await redis.exists(firstKey)) === 0, 10_000)
    yield new Uint8Array(10)
  }
  await t.throwsAsync(store.put(slow(), 'test'), { instanceOf: ExpiredError })
  t.deepEqual(await redis.keys(`${prefix}manifest:*`), [])
})
