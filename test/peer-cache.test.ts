// The worker's content cache: it holds what fits in the volunteer's size, drops the least recently
// used content no unit is using, refuses content larger than the whole cache, and serves only chunks
// it holds in full.
import test from 'ava'
import { randomBytes } from 'node:crypto'
import { chunkHash, LimitError, manifestOf } from '../shared/index.js'
import { createContentStore } from '../worker/index.js'

async function content(size: number) {
  const bytes = new Uint8Array(randomBytes(size))
  return { bytes, ...(await manifestOf(bytes)) }
}

test('cache - least recently used content goes first, pinned content stays, and the size is never exceeded', async (t) => {
  const [a, b, c] = [await content(100_000), await content(100_000), await content(100_000)]
  const store = createContentStore(250_000)
  store.add(a.root, a.manifest, a.encoded)
  store.add(b.root, b.manifest, b.encoded)
  const release = store.pin(a.root)
  store.get(b.root) // b is now the most recently used, but a is pinned
  store.add(c.root, c.manifest, c.encoded)
  t.truthy(store.get(a.root), 'pinned content is kept')
  t.is(store.get(b.root), undefined, 'the unpinned one goes')
  t.truthy(store.get(c.root))
  t.true(store.bytes <= store.maxBytes)
  // Everything pinned and no room: a clear refusal, nothing dropped.
  const releaseC = store.pin(c.root)
  const d = await content(100_000)
  t.throws(() => store.add(d.root, d.manifest, d.encoded), {
    instanceOf: LimitError,
    message: /full of content/,
  })
  release()
  releaseC()
  store.add(d.root, d.manifest, d.encoded)
  t.true(store.bytes <= store.maxBytes)
})

test('cache - content larger than the whole cache is refused with the sizes', async (t) => {
  const big = await content(300_000)
  const store = createContentStore(200_000)
  t.throws(() => store.add(big.root, big.manifest, big.encoded), {
    instanceOf: LimitError,
    message: /300000 bytes does not fit in this worker's cache of 200000 bytes/,
  })
})

test('cache - serves the manifest and the chunks it holds, nothing it does not', async (t) => {
  const c = await content(3 * 64 * 1024 + 5)
  const store = createContentStore(1 << 20)
  store.add(c.root, c.manifest, c.encoded)
  t.deepEqual(store.lookup(c.root), c.encoded)
  t.is(store.lookup(chunkHash(c.manifest, 1)), undefined, 'not yet received')
  store.putChunk(c.root, 1, c.bytes.slice(65_536, 131_072))
  t.deepEqual(store.lookup(chunkHash(c.manifest, 1)), c.bytes.slice(65_536, 131_072))
  t.throws(() => store.putChunk(c.root, 3, new Uint8Array(6)), { message: /chunk 3 must be 5 bytes/ })
  const have = store.have(32)
  t.is(have.length, 1)
  t.deepEqual([...have[0]!.bits], [0b0010])
})
