// Lua scripts of owners' accounting: a job is admitted and created in one step against the owner's
// units in flight, released when the finished job is swept, and requests take tokens from a bucket
// shared by every coordinator.
//
// Keys: `<p>owner:<name>` (hash: units, bytes), `<p>owner:<name>:inflight` (job id -> units of an
// unfinished job), `<p>owner:<name>:jobs` (the owner's job ids by creation time), `<p>rate:<name>`.
import { JOB_EVENT_HELPER } from './event-scripts.js'

/**
 * createJob(prefix, jid, owner, units, limit, now, field, value...) -> -1 when created; else the
 * owner's units in flight, which leave no room for `units` under `limit` (-1: no limit).
 */
export const CREATE_JOB = `
local p, jid, owner = ARGV[1], ARGV[2], ARGV[3]
${JOB_EVENT_HELPER}
local units, limit, now = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local ok = p..'owner:'..owner
if limit >= 0 then
  local inflight = tonumber(redis.call('HGET', ok, 'units') or '0')
  if inflight + units > limit then return inflight end
end
redis.call('HSET', p..'job:'..jid, unpack(ARGV, 7))
jobEvent(jid, 'state', 'state', 'queued')
redis.call('ZADD', p..'jobs', now, jid)
redis.call('SADD', p..'active', jid)
redis.call('ZADD', ok..':jobs', now, jid)
redis.call('HSET', ok..':inflight', jid, units)
redis.call('HINCRBY', ok, 'units', units)
return -1
`

/** releaseUnits(prefix, jid) -> 1 when the finished job's units were still counted in flight. */
export const RELEASE_UNITS = `
local p, jid = ARGV[1], ARGV[2]
local owner = redis.call('HGET', p..'job:'..jid, 'owner')
if not owner then return 0 end
local ok = p..'owner:'..owner
local u = redis.call('HGET', ok..':inflight', jid)
if not u then return 0 end
redis.call('HDEL', ok..':inflight', jid)
redis.call('HINCRBY', ok, 'units', -tonumber(u))
return 1
`

/**
 * takeToken(key, perMinute) -> 0 when a request may go ahead, else the ms until it may. The bucket
 * holds up to a minute's worth and refills continuously; time is Redis's own, so coordinators with
 * different clocks share one bucket fairly.
 */
export const TAKE_TOKEN = `
local key, cap = ARGV[1], tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = cap / 60000
local h = redis.call('HMGET', key, 'tokens', 'at')
local tokens = tonumber(h[1]) or cap
local at = tonumber(h[2]) or now
if now > at then tokens = math.min(cap, tokens + (now - at) * rate) else now = at end
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) / rate) end
redis.call('HSET', key, 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', key, 120000)
return wait
`
