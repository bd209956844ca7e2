// Datasets: large content kept in Redis as CHUNK_BYTES chunks named by their SHA-256, plus the
// manifest listing them, named by its own SHA-256 (the content's root; see shared/content.ts).
//
// An upload is cut into chunks as it arrives; each is written (SET NX) as soon as it is complete,
// with an expiry, so an upload that is refused or abandoned half-way leaves nothing behind. The
// commit, one script, checks that every chunk is still there, makes them all permanent and writes
// the manifest and its meta once. Nothing is ever overwritten: a hash always names the same bytes.
import type { Redis } from 'ioredis'
import { definePrefixed } from '../store/define-script.js'
import { createHash } from 'node:crypto'
import {
  CHUNK_BYTES,
  chunkCount,
  chunkHash,
  encodeManifest,
  ExpiredError,
  LimitError,
  MAX_CONTENT_BYTES,
  type Manifest,
} from '../../shared/index.js'

/** What is known about a stored dataset. */
export interface DatasetInfo {
  root: string
  size: number
  chunks: number
  chunkSize: number
  owner: string
  uploadedAt: string
}

export interface DatasetStore {
  /**
   * Store the bytes `source` yields (at most MAX_CONTENT_BYTES: LimitError past it). `created` is
   * false when the same content was stored before. ExpiredError when the upload outlasted the
   * pending-chunk expiry.
   */
  put(
    source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    owner: string,
  ): Promise<{ info: DatasetInfo; created: boolean }>
  info(root: string): Promise<DatasetInfo | undefined>
  /** The encoded manifest of dataset `root` (its bytes hash to `root`). */
  manifest(root: string): Promise<Uint8Array | undefined>
  /** The bytes of a manifest or a chunk with this SHA-256 hex. */
  get(hash: string): Promise<Uint8Array | undefined>
  /** The dataset's bytes, chunk by chunk, in order (read as they are consumed). */
  read(manifest: Manifest): AsyncIterable<Uint8Array>
}

export interface DatasetStoreInit {
  redis: Redis
  /**
   * Key prefix, e.g. `cohort:`: `<prefix>chunk:<hash>`, `<prefix>manifest:<root>`, its `:meta` and
   * `:chunks`, and `<prefix>chunkrefs`. Content no one holds any more is deleted by the upload ledger
   * (uploads.ts).
   */
  prefix: string
  /** How long a chunk of an upload not yet committed is kept. Default 1 hour. */
  pendingTtlMs?: number
}

/** putChunk(key, bytes, ttlMs) -> 1 when written. A pending chunk seen again gets a fresh expiry. */
const PUT_CHUNK = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('PTTL', KEYS[1]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`

/**
 * commit(prefix, root, manifest, size, chunks, owner, uploadedAt, hash...) -> 1 new, 0 known, -1 when
 * a chunk is missing (expired before the upload ended). A new manifest counts one reference to each
 * chunk it lists (`<p>chunkrefs`) and keeps the list (`manifest:<root>:chunks`), so deleting it later
 * deletes only chunks no other manifest lists. A permanent chunk without a count was stored before
 * chunks were counted: it gets one reference that is never released.
 */
const COMMIT = `
local p, root = ARGV[1], ARGV[2]
for i = 8, #ARGV do
  if redis.call('EXISTS', p..'chunk:'..ARGV[i]) == 0 then return -1 end
end
if redis.call('EXISTS', p..'manifest:'..root) == 1 then return 0 end
for i = 8, #ARGV do
  local ck = p..'chunk:'..ARGV[i]
  if redis.call('HEXISTS', p..'chunkrefs', ARGV[i]) == 0 and redis.call('PTTL', ck) == -1 then
    redis.call('HSET', p..'chunkrefs', ARGV[i], 1)
  end
  redis.call('PERSIST', ck)
  redis.call('HINCRBY', p..'chunkrefs', ARGV[i], 1)
end
redis.call('SET', p..'manifest:'..root, ARGV[3])
redis.call('SET', p..'manifest:'..root..':chunks', table.concat(ARGV, '', 8))
redis.call('HSET', p..'manifest:'..root..':meta', 'size', ARGV[4], 'chunks', ARGV[5], 'owner', ARGV[6],
  'uploadedAt', ARGV[7])
return 1
`

interface DatasetRedis extends Redis {
  cohortPutChunk(key: string, bytes: Buffer, ttlMs: number): Promise<number>
  cohortCommitDataset(...args: (string | number | Buffer)[]): Promise<number>
}

const WRITES_IN_FLIGHT = 8

const asBytes = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.length)
const sha256 = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest()

export function createDatasetStore(init: DatasetStoreInit): DatasetStore {
  const p = init.prefix
  const ttlMs = init.pendingTtlMs ?? 3600_000
  const redis = init.redis as DatasetRedis
  const define = (name: string, numberOfKeys: number, lua: string): void => {
    if (!(name in init.redis)) init.redis.defineCommand(name, { numberOfKeys, lua })
  }
  define('cohortPutChunk', 1, PUT_CHUNK)
  definePrefixed(init.redis, 'cohortCommitDataset', COMMIT)
  const chunkKey = (hash: string): string => `${p}chunk:${hash}`
  const manifestKey = (root: string): string => `${p}manifest:${root}`

  const getBytes = async (key: string): Promise<Uint8Array | undefined> => {
    const b = await redis.getBuffer(key)
    return b === null ? undefined : asBytes(b)
  }
  /** A read started ahead of its use: its failure surfaces when awaited, never as unhandled. */
  const readAhead = (manifest: Manifest, i: number): Promise<Uint8Array | undefined> => {
    const pending = getBytes(chunkKey(chunkHash(manifest, i)))
    pending.catch(() => undefined)
    return pending
  }

  const info = async (root: string): Promise<DatasetInfo | undefined> => {
    const m = await redis.hgetall(`${manifestKey(root)}:meta`)
    if (m['size'] === undefined) return undefined
    return {
      root,
      size: Number(m['size']),
      chunks: Number(m['chunks']),
      chunkSize: CHUNK_BYTES,
      owner: m['owner'] ?? '',
      uploadedAt: m['uploadedAt'] ?? '',
    }
  }

  return {
    info,
    manifest: (root) => getBytes(manifestKey(root)),
    async get(hash) {
      return (await getBytes(chunkKey(hash))) ?? (await getBytes(manifestKey(hash)))
    },

    async put(source, owner) {
      const digests: Buffer[] = []
      let size = 0
      let piece = Buffer.allocUnsafe(CHUNK_BYTES)
      let filled = 0
      // A few chunk writes in flight at once: the upload is not held up by one round trip per chunk.
      const writing: Promise<number>[] = []
      const flush = async (): Promise<void> => {
        const bytes = piece.subarray(0, filled)
        const digest = sha256(bytes)
        digests.push(digest)
        const write = redis.cohortPutChunk(chunkKey(digest.toString('hex')), bytes, ttlMs)
        write.catch(() => undefined) // awaited below, or dropped with a refused upload: never unhandled
        writing.push(write)
        piece = Buffer.allocUnsafe(CHUNK_BYTES)
        filled = 0
        if (writing.length >= WRITES_IN_FLIGHT) await writing.shift()
      }
      for await (const data of source) {
        size += data.length
        if (size > MAX_CONTENT_BYTES)
          throw new LimitError(
            `content is larger than the most a dataset may hold, ${MAX_CONTENT_BYTES} bytes`,
          )
        for (let at = 0; at < data.length;) {
          const n = Math.min(CHUNK_BYTES - filled, data.length - at)
          piece.set(data.subarray(at, at + n), filled)
          filled += n
          at += n
          if (filled === CHUNK_BYTES) await flush()
        }
      }
      // The last, shorter chunk; empty content is one empty chunk, as manifestOf has it.
      if (filled > 0 || digests.length === 0) await flush()
      await Promise.all(writing)
      const manifest: Manifest = {
        type: 'manifest',
        v: 1,
        size,
        chunkSize: CHUNK_BYTES,
        chunks: asBytes(Buffer.concat(digests)),
      }
      const encoded = Buffer.from(encodeManifest(manifest))
      const root = sha256(encoded).toString('hex')
      const uploadedAt = new Date().toISOString()
      const hashes = digests.map((d) => d.toString('hex'))
      const n = hashes.length
      const status = await redis.cohortCommitDataset(p, root, encoded, size, n, owner, uploadedAt, ...hashes)
      if (status === -1)
        throw new ExpiredError(`the upload took longer than ${ttlMs} ms; its first chunks expired`)
      const stored = status === 1 ? undefined : await info(root)
      return {
        info: stored ?? { root, size, chunks: n, chunkSize: CHUNK_BYTES, owner, uploadedAt },
        created: status === 1,
      }
    },

    async *read(manifest) {
      const n = chunkCount(manifest.size, manifest.chunkSize)
      // One chunk read ahead, so Redis and the consumer work at the same time.
      let next = readAhead(manifest, 0)
      for (let i = 0; i < n; i++) {
        const bytes = await next
        if (i + 1 < n) next = readAhead(manifest, i + 1)
        if (bytes === undefined) throw new Error(`chunk ${i} of a stored dataset is missing`)
        yield bytes
      }
    },
  }
}
