// Content-addressed bytes in Redis (WebAssembly modules, input blobs), keyed by their SHA-256 hex. Writing the
// same bytes twice is a no-op; nothing is ever overwritten, so a hash always names the same bytes.
import type { Redis } from 'ioredis'

export interface ContentStore {
  /** Store `bytes` under `hash` (the caller computed it); false when they were already there. */
  put(hash: string, bytes: Uint8Array, meta: Record<string, string>): Promise<boolean>
  get(hash: string): Promise<Uint8Array | undefined>
  /** What was recorded with the bytes at upload (size, owner, time, warnings). */
  meta(hash: string): Promise<Record<string, string> | undefined>
  /** Record more about stored bytes (a module's chunked form); the bytes themselves never change. */
  annotate(hash: string, meta: Record<string, string>): Promise<void>
}

export interface ContentStoreInit {
  redis: Redis
  /** Key prefix, e.g. `cohort:`; modules live at `<prefix>module:<hash>`. */
  prefix: string
  /** What is stored: `module` (the default) or `blob`; keys are `<prefix><namespace>:<hash>`. */
  namespace?: string
}

export function createContentStore(init: ContentStoreInit): ContentStore {
  const { redis } = init
  const key = (hash: string): string => `${init.prefix}${init.namespace ?? 'module'}:${hash}`
  return {
    async put(hash, bytes, meta) {
      const created = await redis.set(key(hash), Buffer.from(bytes), 'NX')
      if (created === 'OK') await redis.hset(`${key(hash)}:meta`, meta)
      return created === 'OK'
    },
    async get(hash) {
      const b = await redis.getBuffer(key(hash))
      return b === null ? undefined : new Uint8Array(b.buffer, b.byteOffset, b.length)
    },
    async meta(hash) {
      const m = await redis.hgetall(`${key(hash)}:meta`)
      return Object.keys(m).length === 0 ? undefined : m
    },
    async annotate(hash, meta) {
      await redis.hset(`${key(hash)}:meta`, meta)
    },
  }
}
