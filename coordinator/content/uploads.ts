// Who holds which upload, for how long, and how many bytes each owner holds.
//
// Content is stored once per hash, but held per (owner, hash): an owner holds what it uploaded itself
// (the same bytes uploaded by two owners are held by both and counted against both quotas). Each
// hold expires `retention` after the owner last uploaded the content or submitted a job naming it;
// the content itself is deleted when its last holder's hold expires. A dataset's chunks are counted
// per manifest that lists them (`<p>chunkrefs`), so chunks shared by two datasets outlive either one;
// a module larger than one chunk pins its chunked form (holder `module~<hash>`) while it exists.
//
// Keys: `<p>holders:<kind>:<hash>` (hash: owner -> "size:uploadedAtMs"), `<p>uploads` (sorted set
// of "<kind>:<hash>:<owner>" by expiry), `<p>owner:<owner>` field `bytes`.
import type { Redis } from 'ioredis'
import { definePrefixed } from '../store/define-script.js'

export type UploadKind = 'module' | 'blob' | 'dataset'
const KINDS: readonly UploadKind[] = ['module', 'blob', 'dataset']

/**
 * hold(prefix, kind, hash, owner, size, limit, expiresAt, now) -> {1 new, 0 held already (expiry
 * pushed out), -1 over quota; the owner's bytes}. limit -1: no limit.
 */
const HOLD = `
local p, kind, hash, owner = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local size, limit, exp, now = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7], ARGV[8]
local hk = p..'holders:'..kind..':'..hash
local member = kind..':'..hash..':'..owner
local used = tonumber(redis.call('HGET', p..'owner:'..owner, 'bytes') or '0')
if redis.call('HEXISTS', hk, owner) == 1 then
  redis.call('ZADD', p..'uploads', 'GT', exp, member)
  return {0, used}
end
if limit >= 0 and used + size > limit then return {-1, used} end
redis.call('HSET', hk, owner, size..':'..now)
redis.call('ZADD', p..'uploads', exp, member)
redis.call('HINCRBY', p..'owner:'..owner, 'bytes', size)
return {1, used + size}
`

/** touch(prefix, owner, expiresAt, hash...) -> holds whose expiry was pushed out. */
const TOUCH = `
local p, owner, exp = ARGV[1], ARGV[2], ARGV[3]
local n = 0
for i = 4, #ARGV do
  for _, kind in ipairs({'module', 'blob', 'dataset'}) do
    if redis.call('HEXISTS', p..'holders:'..kind..':'..ARGV[i], owner) == 1 then
      redis.call('ZADD', p..'uploads', 'GT', exp, kind..':'..ARGV[i]..':'..owner)
      n = n + 1
    end
  end
end
return n
`

/**
 * expire(prefix, now, limit) -> {holds ended, contents deleted}. Ends holds whose expiry is past and
 * deletes content no one holds any more. A member with an empty owner ("<kind>:<hash>:") only asks
 * for the content to be deleted if no one holds it.
 */
const EXPIRE = `
local p, now, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local release
local function dropDataset(root)
  local list = redis.call('GET', p..'manifest:'..root..':chunks')
  redis.call('DEL', p..'manifest:'..root, p..'manifest:'..root..':meta', p..'manifest:'..root..':chunks')
  if not list then return end
  for i = 1, #list, 64 do
    local h = string.sub(list, i, i + 63)
    if redis.call('HINCRBY', p..'chunkrefs', h, -1) <= 0 then
      redis.call('HDEL', p..'chunkrefs', h)
      redis.call('DEL', p..'chunk:'..h)
    end
  end
end
release = function(kind, hash, holder)
  local hk = p..'holders:'..kind..':'..hash
  redis.call('HDEL', hk, holder)
  if redis.call('HLEN', hk) > 0 then return 0 end
  if kind == 'blob' then
    redis.call('DEL', p..'blob:'..hash, p..'blob:'..hash..':meta')
  elseif kind == 'module' then
    local root = redis.call('HGET', p..'module:'..hash..':meta', 'root')
    redis.call('DEL', p..'module:'..hash, p..'module:'..hash..':meta')
    if root then release('dataset', root, 'module~'..hash) end
  elseif kind == 'dataset' then
    dropDataset(hash)
  end
  return 1
end
local due = redis.call('ZRANGEBYSCORE', p..'uploads', '-inf', now, 'LIMIT', 0, limit)
local deleted = 0
for _, m in ipairs(due) do
  redis.call('ZREM', p..'uploads', m)
  local a = string.find(m, ':', 1, true)
  local b = string.find(m, ':', a + 1, true)
  local kind, hash, owner = string.sub(m, 1, a - 1), string.sub(m, a + 1, b - 1), string.sub(m, b + 1)
  local v = redis.call('HGET', p..'holders:'..kind..':'..hash, owner)
  if v and owner ~= '' then
    redis.call('HINCRBY', p..'owner:'..owner, 'bytes', -tonumber(string.match(v, '^(%d+)')))
  end
  deleted = deleted + release(kind, hash, owner)
end
return {#due, deleted}
`

interface LedgerRedis extends Redis {
  cohortHold(...args: (string | number)[]): Promise<[number, number]>
  cohortTouch(...args: (string | number)[]): Promise<number>
  cohortExpireUploads(...args: (string | number)[]): Promise<[number, number]>
}

/** What holding an upload did. */
export type HoldOutcome = { status: 'new' | 'held'; bytes: number } | { status: 'over-quota'; bytes: number }

export interface Hold {
  size: number
  uploadedAt: Date
}

export interface Uploads {
  /**
   * Record that `owner` holds `size` bytes of content `hash` until `expiresAt`: refused when that
   * would put the owner's bytes past `limit` (null: no limit). Holding it again only pushes the expiry out.
   */
  hold(
    kind: UploadKind,
    hash: string,
    owner: string,
    size: number,
    limit: number | null,
    expiresAt: number,
  ): Promise<HoldOutcome>
  /** `owner`'s hold of `hash`, if any. */
  held(kind: UploadKind, hash: string, owner: string): Promise<Hold | undefined>
  /** Whether `owner` holds `hash` as any kind of upload. */
  holdsAny(hash: string, owner: string): Promise<boolean>
  /** Push the expiry of `owner`'s holds of these hashes out to `expiresAt` (never in). */
  touch(owner: string, hashes: string[], expiresAt: number): Promise<void>
  /** A module's chunked form (dataset `root`) is kept while module `moduleHash` is. */
  pinChunkedModule(root: string, moduleHash: string): Promise<void>
  /** Delete `kind` content `hash` at the next expiry run if no one holds it. */
  dropIfUnheld(kind: UploadKind, hash: string): Promise<void>
  /** Bytes `owner` holds. */
  bytes(owner: string): Promise<number>
  /** End holds that expired by `now` (at most `limit`) and delete content no one holds. */
  expire(now: number, limit: number): Promise<{ ended: number; deleted: number }>
  /** When `owner`'s hold of `hash` expires (ms), if it holds it. */
  expiresAt(kind: UploadKind, hash: string, owner: string): Promise<number | undefined>
}

export function createUploads(init: { redis: Redis; prefix: string }): Uploads {
  const p = init.prefix
  const redis = init.redis as LedgerRedis
  const define = (name: string, lua: string): void => {
    definePrefixed(redis, name, lua)
  }
  define('cohortHold', HOLD)
  define('cohortTouch', TOUCH)
  define('cohortExpireUploads', EXPIRE)
  const holders = (kind: UploadKind, hash: string): string => `${p}holders:${kind}:${hash}`
  return {
    async hold(kind, hash, owner, size, limit, expiresAt) {
      const [status, bytes] = await redis.cohortHold(
        p,
        kind,
        hash,
        owner,
        size,
        limit ?? -1,
        expiresAt,
        Date.now(),
      )
      return { status: status === 1 ? 'new' : status === 0 ? 'held' : 'over-quota', bytes: Number(bytes) }
    },
    async held(kind, hash, owner) {
      const v = await redis.hget(holders(kind, hash), owner)
      if (v === null) return undefined
      const [size = '0', at = '0'] = v.split(':')
      return { size: Number(size), uploadedAt: new Date(Number(at)) }
    },
    async holdsAny(hash, owner) {
      const found = await Promise.all(KINDS.map((k) => redis.hexists(holders(k, hash), owner)))
      return found.some((f) => f === 1)
    },
    async touch(owner, hashes, expiresAt) {
      if (hashes.length > 0) await redis.cohortTouch(p, owner, expiresAt, ...hashes)
    },
    async pinChunkedModule(root, moduleHash) {
      await redis.hset(holders('dataset', root), `module~${moduleHash}`, `0:${Date.now()}`)
    },
    async dropIfUnheld(kind, hash) {
      await redis.zadd(`${p}uploads`, 0, `${kind}:${hash}:`)
    },
    async bytes(owner) {
      return Number((await redis.hget(`${p}owner:${owner}`, 'bytes')) ?? 0)
    },
    async expire(now, limit) {
      const [ended, deleted] = await redis.cohortExpireUploads(p, now, limit)
      return { ended: Number(ended), deleted: Number(deleted) }
    },
    async expiresAt(kind, hash, owner) {
      const s = await redis.zscore(`${p}uploads`, `${kind}:${hash}:${owner}`)
      return s === null ? undefined : Number(s)
    },
  }
}
