// Uploaded input blobs: POST /v1/blobs stores bytes by SHA-256 (413 past the limit, 415 for another
// Content-Type, 404 for an unknown hash); a `wasm` job splits a blob into its lines or fixed-size
// pieces and runs on two daemons to the result computed here; a job naming an unknown blob is a 422.
import test from 'ava'
import { splitBlob } from '../jobs/wasm.js'
import { sha256Hex } from '../shared/index.js'
import { startCluster, waitForJob } from './helpers/cluster.js'
import { useServices } from './helpers/services.js'
import { fnvModule, uploadOk } from './helpers/wasm.js'

const services = useServices(test)

/** POST /v1/blobs; returns the status and the parsed body. */
async function uploadBlob(baseUrl: string, bytes: Uint8Array, type = 'application/octet-stream') {
  const r = await fetch(`${baseUrl}/v1/blobs`, {
    method: 'POST',
    headers: { 'content-type': type },
    body: bytes as Uint8Array<ArrayBuffer>,
  })
  return { status: r.status, body: (await r.json()) as Record<string, unknown> }
}

/** What the WAT example returns for one record: 32-bit FNV-1a as 4 little-endian bytes, base64. */
function fnv1a(bytes: Uint8Array): string {
  let h = 0x811c9dc5
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0
  return Buffer.from(new Uint32Array([h]).buffer).toString('base64')
}

test('blobs - a blob split into lines and into fixed-size pieces runs on two daemons to the local result', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const [a, b] = [await cluster.addWorker(), await cluster.addWorker()]
  const url = cluster.coordinators[0]!.url
  const fnv = await uploadOk(url, await fnvModule())
  const lines = ['volunteer', 'computing', '', 'with WebAssembly', 'ünïcödé', 'x'.repeat(300)]
  const text = `${lines.join('\n')}\n`
  const bytes = new TextEncoder().encode(text)
  const up = await uploadBlob(url, bytes)
  t.is(up.status, 201, JSON.stringify(up.body))
  t.deepEqual(up.body['hash'], await sha256Hex(bytes))
  t.is(up.body['size'], bytes.length)
  const blob = up.body['hash'] as string

  const byLines = await cluster.api.submit({
    type: 'wasm',
    params: { module: fnv, input: { blob, split: 'lines' }, recordsPerUnit: 2 },
  })
  const byBytes = await cluster.api.submit({
    type: 'wasm',
    params: { module: fnv, input: { blob, split: { bytes: 64 } }, recordsPerUnit: 3 },
  })
  const [ld, bd] = [await waitForJob(cluster.api, byLines.id), await waitForJob(cluster.api, byBytes.id)]
  t.is(ld.state, 'completed', JSON.stringify(ld))
  t.is(bd.state, 'completed', JSON.stringify(bd))
  // Lines without the newline; the trailing newline makes no empty record, the empty line does.
  const enc = new TextEncoder()
  t.deepEqual((await cluster.api.result(byLines.id)).result, {
    records: lines.length,
    outputs: lines.map((l) => fnv1a(enc.encode(l))),
  })
  t.is(ld.units.total, 3)
  const pieces: Uint8Array[] = []
  for (let i = 0; i < bytes.length; i += 64) pieces.push(bytes.subarray(i, i + 64))
  t.true((pieces.at(-1)?.length ?? 64) < 64, 'the last piece is shorter')
  t.deepEqual((await cluster.api.result(byBytes.id)).result, {
    records: pieces.length,
    outputs: pieces.map(fnv1a),
  })
  t.is(bd.units.total, Math.ceil(pieces.length / 3))
  // Quorum 2 with two daemons: both computed every unit.
  const units = ld.units.total + bd.units.total
  t.true(a.daemon.stats.resultsAccepted >= units && b.daemon.stats.resultsAccepted >= units)
})

test('blobs - uploads past the limit are 413, other types 415, unknown hashes 404 and a job naming one 422', async (t) => {
  const cluster = await startCluster({ services: services(), tuning: { maxBlobBytes: 64 * 1024 } })
  t.teardown(() => cluster.stop())
  const url = cluster.coordinators[0]!.url
  const big = await uploadBlob(url, new Uint8Array(64 * 1024 + 1))
  t.is(big.status, 413)
  t.is(big.body['type'], 'urn:cohort:problem:too-large')
  t.is((await uploadBlob(url, new Uint8Array(10), 'text/plain')).status, 415)

  const bytes = new TextEncoder().encode('a\nb\n')
  const first = await uploadBlob(url, new Uint8Array(bytes))
  t.is(first.status, 201)
  t.is((await uploadBlob(url, bytes)).status, 200, 'the same bytes again')
  const hash = first.body['hash'] as string
  const got = await fetch(`${url}/v1/blobs/${hash}`)
  t.is(got.status, 200)
  t.is(got.headers.get('content-type'), 'application/octet-stream')
  t.deepEqual(new Uint8Array(await got.arrayBuffer()), bytes)
  const missing = await fetch(`${url}/v1/blobs/${'0'.repeat(64)}`)
  t.is(missing.status, 404)
  t.regex(missing.headers.get('content-type') ?? '', /application\/problem\+json/)
  t.is((await fetch(`${url}/v1/blobs/nothex`)).status, 404)
  // A blob is not a module: the two namespaces are separate.
  t.is((await fetch(`${url}/v1/modules/${hash}`)).status, 404)

  const fnv = await uploadOk(url, await fnvModule())
  const submit = async (input: unknown) => {
    const r = await fetch(`${url}/v1/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'wasm', params: { module: fnv, input } }),
    })
    return { status: r.status, body: (await r.json()) as Record<string, unknown> }
  }
  const unknown = await submit({ blob: 'f'.repeat(64), split: 'lines' })
  t.is(unknown.status, 422, JSON.stringify(unknown.body))
  t.is(unknown.body['field'], 'params.input.blob')
  t.regex(String(unknown.body['detail']), /no blob with hash f{64}; upload it with POST \/v1\/blobs/)
  const badSplit = await submit({ blob: hash, split: 'words' })
  t.is(badSplit.status, 422)
  t.is(badSplit.body['field'], 'params.input.split')
  const empty = await uploadBlob(url, new Uint8Array(0))
  t.is((await submit({ blob: empty.body['hash'], split: 'lines' })).body['field'], 'params.input.blob')
  t.is((await submit({ blob: hash, split: { bytes: 1 } })).status, 201)
})

test('blobs - splitBlob gives lines without their newline and fixed-size pieces, the last shorter', (t) => {
  const enc = new TextEncoder()
  const dec = (rs: Uint8Array[]) => rs.map((r) => new TextDecoder().decode(r))
  t.deepEqual(dec(splitBlob(enc.encode(''), 'lines')), [])
  t.deepEqual(dec(splitBlob(enc.encode('\n'), 'lines')), [''])
  t.deepEqual(dec(splitBlob(enc.encode('a\n\nb'), 'lines')), ['a', '', 'b'])
  t.deepEqual(dec(splitBlob(enc.encode('a\r\nb\n'), 'lines')), ['a\r', 'b'])
  t.deepEqual(dec(splitBlob(enc.encode('abcdefg'), { bytes: 3 })), ['abc', 'def', 'g'])
  t.deepEqual(dec(splitBlob(enc.encode('abcdef'), { bytes: 3 })), ['abc', 'def'])
  t.deepEqual(splitBlob(new Uint8Array(0), { bytes: 3 }), [])
})
