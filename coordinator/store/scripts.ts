// Lua scripts: every state change of replicas and leases is one atomic script, so any number of
// coordinators can share one Redis without locks, and a coordinator killed between two calls
// leaves a consistent state behind.
//
// All scripts take the key prefix as ARGV[1] (single Redis / sentinel deployments; see docs).

/** Shared Lua helpers, prepended to scripts that need them. */
const HELPERS = `
local p = ARGV[1]
local function readyScore(jid)
  local prio = tonumber(redis.call('HGET', p..'job:'..jid, 'priority') or '0')
  local seq = redis.call('INCR', p..'seq')
  return (100 - prio) * 1000000000000 + seq
end
local function newReplica(uid, jid, now)
  local n = redis.call('HINCRBY', p..'unit:'..uid, 'replicaSeq', 1)
  local rid = uid..':r'..n
  redis.call('HSET', p..'replica:'..rid, 'unitId', uid, 'jobId', jid, 'state', 'ready', 'createdAt', now)
  redis.call('ZADD', p..'ready', readyScore(jid), rid)
  return rid
end
local function jobActive(jid)
  local s = redis.call('HGET', p..'job:'..jid, 'state')
  return s == 'queued' or s == 'running'
end
local function unitFail(uid, jid, reason, now)
  redis.call('HSET', p..'unit:'..uid, 'state', 'failed', 'error', reason)
  redis.call('HINCRBY', p..'job:'..jid, 'unitsFailed', 1)
  if jobActive(jid) then
    redis.call('HSET', p..'job:'..jid, 'state', 'failed', 'error', 'unit '..uid..' failed: '..reason, 'updatedAt', now)
    redis.call('SREM', p..'active', jid)
    redis.call('ZADD', p..'ended', now, jid)
  end
end
-- A lease ended without a result (expired or handed back): free the worker's slot and issue a
-- replacement, unless the unit has been handed out too often.
local function leaseEnded(rid, uid, jid, worker, newState, now, maxLost)
  redis.call('HSET', p..'replica:'..rid, 'state', newState)
  redis.call('ZREM', p..'leases', rid)
  redis.call('SREM', p..'worker:'..worker..':leases', rid)
  redis.call('SREM', p..'unit:'..uid..':workers', worker)
  if redis.call('HGET', p..'unit:'..uid, 'state') ~= 'pending' or not jobActive(jid) then return 0 end
  local lost = redis.call('HINCRBY', p..'unit:'..uid, 'lost', 1)
  if lost > maxLost then
    unitFail(uid, jid, 'leases lost '..lost..' times', now)
    return 0
  end
  newReplica(uid, jid, now)
  return 1
end
-- The worker gives a lease back (or lost it in transit): 1 when it still held it.
local function giveBack(rid, worker, now, maxLost)
  local r = redis.call('HMGET', p..'replica:'..rid, 'state', 'worker', 'unitId', 'jobId')
  if r[1] ~= 'leased' or r[2] ~= worker then return 0 end
  leaseEnded(rid, r[3], r[4], worker, 'released', now, maxLost)
  return 1
end
`

/**
 * addUnits(prefix, jobId, quorum, now, n, index1, input1, ...) -> number of units created.
 * Idempotent per unit index, so a planner restarted half-way never duplicates replicas.
 */
export const ADD_UNITS = `${HELPERS}
local jid = ARGV[2]
local quorum = tonumber(ARGV[3])
local now = ARGV[4]
local n = tonumber(ARGV[5])
local created = 0
for i = 0, n - 1 do
  local idx = ARGV[6 + i * 2]
  local input = ARGV[7 + i * 2]
  local uid = jid..':'..idx
  if redis.call('EXISTS', p..'unit:'..uid) == 0 then
    redis.call('HSET', p..'unit:'..uid, 'jobId', jid, 'index', idx, 'input', input, 'state', 'pending',
      'issued', quorum, 'replicaSeq', 0, 'lost', 0)
    for r = 1, quorum do newReplica(uid, jid, now) end
    created = created + 1
  end
end
return created
`

/**
 * lease(prefix, worker, want, now, leaseMs, scanLimit, acceptsCsv)
 *   -> { {rid, uid, jid, kind, input, deadline}, ... }
 * Takes ready replicas in priority order, skipping units this worker already holds or computed,
 * so a unit's quorum always comes from distinct workers.
 */
export const LEASE = `${HELPERS}
local worker = ARGV[2]
local want = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local leaseMs = tonumber(ARGV[5])
local scan = tonumber(ARGV[6])
local accepts = {}
for k in string.gmatch(ARGV[7], '[^,]+') do accepts[k] = true end
local out = {}
local cands = redis.call('ZRANGE', p..'ready', 0, scan - 1)
for _, rid in ipairs(cands) do
  if #out >= want then break end
  local r = redis.call('HMGET', p..'replica:'..rid, 'unitId', 'jobId', 'state')
  local uid, jid = r[1], r[2]
  if not uid or r[3] ~= 'ready' then
    redis.call('ZREM', p..'ready', rid)
  else
    local j = redis.call('HMGET', p..'job:'..jid, 'state', 'kind')
    local u = redis.call('HMGET', p..'unit:'..uid, 'state', 'input')
    if (j[1] ~= 'queued' and j[1] ~= 'running') or u[1] ~= 'pending' then
      redis.call('ZREM', p..'ready', rid)
      redis.call('HSET', p..'replica:'..rid, 'state', 'cancelled')
    elseif accepts[j[2]] and redis.call('SISMEMBER', p..'unit:'..uid..':workers', worker) == 0 then
      redis.call('ZREM', p..'ready', rid)
      redis.call('SADD', p..'unit:'..uid..':workers', worker)
      local deadline = now + leaseMs
      redis.call('HSET', p..'replica:'..rid, 'state', 'leased', 'worker', worker, 'deadline', deadline, 'leasedAt', now)
      redis.call('ZADD', p..'leases', deadline, rid)
      redis.call('SADD', p..'worker:'..worker..':leases', rid)
      if j[1] == 'queued' then redis.call('HSET', p..'job:'..jid, 'state', 'running', 'updatedAt', now) end
      out[#out + 1] = { rid, uid, jid, j[2], u[2], tostring(deadline) }
    end
  end
end
return out
`

/**
 * reclaim(prefix, worker, now, maxLost, held...) -> number of leases taken back.
 * A worker asks for work one request at a time and lists what it holds: any lease the coordinator
 * recorded for it that is not in that list was lost on the way (a grant whose reply never arrived),
 * and goes back to the queue now instead of at its deadline.
 */
export const RECLAIM = `${HELPERS}
local worker = ARGV[2]
local now = tonumber(ARGV[3])
local maxLost = tonumber(ARGV[4])
local held = {}
for i = 5, #ARGV do held[ARGV[i]] = true end
local n = 0
for _, rid in ipairs(redis.call('SMEMBERS', p..'worker:'..worker..':leases')) do
  if not held[rid] then
    local given = giveBack(rid, worker, now, maxLost)
    if given == 0 then redis.call('SREM', p..'worker:'..worker..':leases', rid) end
    n = n + given
  end
end
return n
`

/**
 * transfer(prefix, from, to, now, leaseMs, maxLost, rid...)
 *   -> { { {rid, uid, jid, kind, input, deadline}, ... }, { refused rid, ... }, givenBack }
 * Moves leases `from` holds to `to`, as `from` signed (a handoff, a steal). A replica of a unit `to`
 * already holds or computed is never moved: it goes back to the queue at once (no one waits for its
 * deadline) and is refused, as is a replica `from` no longer holds.
 */
export const TRANSFER = `${HELPERS}
local from, to = ARGV[2], ARGV[3]
local now = tonumber(ARGV[4])
local leaseMs = tonumber(ARGV[5])
local maxLost = tonumber(ARGV[6])
local moved, refused, back = {}, {}, 0
for i = 7, #ARGV do
  local rid = ARGV[i]
  local r = redis.call('HMGET', p..'replica:'..rid, 'state', 'worker', 'unitId', 'jobId')
  local uid, jid = r[3], r[4]
  local held = r[1] == 'leased' and r[2] == from and uid and jobActive(jid)
    and redis.call('HGET', p..'unit:'..uid, 'state') == 'pending'
  if not held then
    refused[#refused + 1] = rid
  elseif redis.call('SISMEMBER', p..'unit:'..uid..':workers', to) == 1 then
    back = back + giveBack(rid, from, now, maxLost)
    refused[#refused + 1] = rid
  else
    local deadline = now + leaseMs
    redis.call('SREM', p..'unit:'..uid..':workers', from)
    redis.call('SADD', p..'unit:'..uid..':workers', to)
    redis.call('HSET', p..'replica:'..rid, 'worker', to, 'deadline', deadline, 'transferredFrom', from,
      'transferredAt', now)
    redis.call('HINCRBY', p..'replica:'..rid, 'transfers', 1)
    redis.call('ZADD', p..'leases', deadline, rid)
    redis.call('SREM', p..'worker:'..from..':leases', rid)
    redis.call('SADD', p..'worker:'..to..':leases', rid)
    local kind = redis.call('HGET', p..'job:'..jid, 'kind')
    local input = redis.call('HGET', p..'unit:'..uid, 'input')
    moved[#moved + 1] = { rid, uid, jid, kind, input, tostring(deadline) }
  end
end
return { moved, refused, back }
`

/** renew(prefix, worker, now, leaseMs, rid...) -> { rid, deadline-or-"lost", ... } */
export const RENEW = `${HELPERS}
local worker = ARGV[2]
local now = tonumber(ARGV[3])
local leaseMs = tonumber(ARGV[4])
local out = {}
for i = 5, #ARGV do
  local rid = ARGV[i]
  local r = redis.call('HMGET', p..'replica:'..rid, 'state', 'worker', 'jobId', 'unitId')
  local ok = r[1] == 'leased' and r[2] == worker and jobActive(r[3])
    and redis.call('HGET', p..'unit:'..r[4], 'state') == 'pending'
  if ok then
    local deadline = now + leaseMs
    redis.call('HSET', p..'replica:'..rid, 'deadline', deadline)
    redis.call('ZADD', p..'leases', deadline, rid)
    out[#out + 1] = rid
    out[#out + 1] = tostring(deadline)
  else
    redis.call('SREM', p..'worker:'..worker..':leases', rid)
    out[#out + 1] = rid
    out[#out + 1] = 'lost'
  end
end
return out
`

/** release(prefix, worker, now, maxLost, rid...) -> number released. The worker hands leases back. */
export const RELEASE = `${HELPERS}
local worker = ARGV[2]
local now = tonumber(ARGV[3])
local maxLost = tonumber(ARGV[4])
local n = 0
for i = 5, #ARGV do
  n = n + giveBack(ARGV[i], worker, now, maxLost)
end
return n
`

/** expire(prefix, now, limit, maxLost) -> number of leases that had passed their deadline. */
export const EXPIRE = `${HELPERS}
local now = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local maxLost = tonumber(ARGV[4])
local rids = redis.call('ZRANGEBYSCORE', p..'leases', '-inf', now, 'LIMIT', 0, limit)
for _, rid in ipairs(rids) do
  local r = redis.call('HMGET', p..'replica:'..rid, 'state', 'worker', 'unitId', 'jobId')
  if r[1] == 'leased' then
    leaseEnded(rid, r[3], r[4], r[2], 'expired', now, maxLost)
  else
    redis.call('ZREM', p..'leases', rid)
  end
end
return #rids
`

/**
 * submit(prefix, rid, worker, uid, digest, output, now, computeMs)
 *   -> { status, reason-or-unit-state }
 * Stores a result once per replica: a second submission of the same replica is a duplicate.
 */
export const SUBMIT = `${HELPERS}
local rid, worker, uid, digest, output = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local now, computeMs = ARGV[7], ARGV[8]
local r = redis.call('HMGET', p..'replica:'..rid, 'unitId', 'jobId', 'state', 'worker')
if not r[1] then return { 'rejected', 'unknown replica' } end
if r[1] ~= uid then return { 'rejected', 'replica does not belong to that unit' } end
if r[4] ~= worker then return { 'rejected', 'replica was not leased to this worker' } end
if r[3] == 'done' then return { 'duplicate', redis.call('HGET', p..'unit:'..uid, 'state') } end
if r[3] ~= 'leased' then return { 'rejected', 'lease is no longer held ('..r[3]..')' } end
local js = redis.call('HGET', p..'job:'..r[2], 'state')
if js == 'cancelled' or js == 'failed' then
  redis.call('HSET', p..'replica:'..rid, 'state', 'cancelled')
  redis.call('ZREM', p..'leases', rid)
  redis.call('SREM', p..'worker:'..worker..':leases', rid)
  return { 'rejected', 'job is '..js }
end
redis.call('HSET', p..'replica:'..rid, 'state', 'done', 'digest', digest, 'computeMs', computeMs, 'doneAt', now)
redis.call('ZREM', p..'leases', rid)
redis.call('SREM', p..'worker:'..worker..':leases', rid)
local us = redis.call('HGET', p..'unit:'..uid, 'state')
if us == 'pending' then
  redis.call('HSET', p..'unit:'..uid..':results', rid, digest..'|'..worker..'|'..computeMs)
  redis.call('HSETNX', p..'unit:'..uid..':outputs', digest, output)
end
redis.call('HINCRBY', p..'worker:'..worker, 'results', 1)
return { 'accepted', redis.call('HGET', p..'unit:'..uid, 'state') }
`

/**
 * decide(prefix, uid, now, nResults, bestSize, bestDigest, agreeingCsv)
 *   -> { verdict, validated, failed, total }
 * The validator's verdict on one unit, given the agreement it computed over `nResults` results.
 * Returns 'stale' when more results arrived meanwhile, so the caller evaluates again.
 */
export const DECIDE = `${HELPERS}
local uid = ARGV[2]
local now = ARGV[3]
local nResults = tonumber(ARGV[4])
local bestSize = tonumber(ARGV[5])
local bestDigest = ARGV[6]
local u = redis.call('HMGET', p..'unit:'..uid, 'state', 'jobId', 'issued')
local jid = u[2]
if not jid then return { 'unknown', 0, 0, 0 } end
local function counts(verdict)
  local j = redis.call('HMGET', p..'job:'..jid, 'unitsValidated', 'unitsFailed', 'unitsTotal')
  return { verdict, tonumber(j[1] or '0'), tonumber(j[2] or '0'), tonumber(j[3] or '0') }
end
if u[1] ~= 'pending' then return counts('settled') end
if redis.call('HLEN', p..'unit:'..uid..':results') ~= nResults then return counts('stale') end
local quorum = tonumber(redis.call('HGET', p..'job:'..jid, 'quorum'))
local maxReplicas = tonumber(redis.call('HGET', p..'job:'..jid, 'maxReplicas'))
if bestSize >= quorum then
  redis.call('HSET', p..'unit:'..uid, 'state', 'validated', 'digest', bestDigest, 'validatedAt', now)
  redis.call('HINCRBY', p..'job:'..jid, 'unitsValidated', 1)
  redis.call('HSET', p..'job:'..jid, 'updatedAt', now)
  -- Trust: every worker whose result agreed gains credit; the others lose standing.
  local agreeing = {}
  for rid in string.gmatch(ARGV[7], '[^,]+') do agreeing[rid] = true end
  local res = redis.call('HGETALL', p..'unit:'..uid..':results')
  for i = 1, #res, 2 do
    local rid, val = res[i], res[i + 1]
    local w, ms = string.match(val, '^[^|]+|([^|]+)|(%d+)$')
    if agreeing[rid] then
      redis.call('HINCRBY', p..'worker:'..w, 'valid', 1)
      redis.call('HINCRBY', p..'worker:'..w, 'creditMs', tonumber(ms))
    else
      redis.call('HINCRBY', p..'worker:'..w, 'invalid', 1)
    end
  end
  -- Keep only the canonical output.
  local out = redis.call('HGET', p..'unit:'..uid..':outputs', bestDigest)
  redis.call('DEL', p..'unit:'..uid..':outputs')
  redis.call('HSET', p..'unit:'..uid, 'output', out)
  return counts('validated')
end
local issued = tonumber(u[3])
local outstanding = issued - nResults
if bestSize + outstanding + (maxReplicas - issued) < quorum then
  unitFail(uid, jid, 'no quorum of '..quorum..' agreeing results after '..issued..' replicas', now)
  return counts('failed')
end
local needed = quorum - bestSize - outstanding
if needed > 0 then
  if needed > maxReplicas - issued then needed = maxReplicas - issued end
  for i = 1, needed do newReplica(uid, jid, now) end
  redis.call('HINCRBY', p..'unit:'..uid, 'issued', needed)
  redis.call('HINCRBY', p..'job:'..jid, 'replicasExtra', needed)
  return counts('reissued')
end
return counts('waiting')
`

/** cancel(prefix, jid, now) -> previous state. Only active jobs can be cancelled. */
export const CANCEL = `${HELPERS}
local jid, now = ARGV[2], ARGV[3]
local s = redis.call('HGET', p..'job:'..jid, 'state')
if s == 'queued' or s == 'running' then
  redis.call('HSET', p..'job:'..jid, 'state', 'cancelled', 'updatedAt', now)
  redis.call('SREM', p..'active', jid)
  redis.call('ZADD', p..'ended', now, jid)
end
return s
`

/** complete(prefix, jid, resultJson, now) -> 1 when the job moved to completed, else 0. */
export const COMPLETE = `${HELPERS}
local jid, result, now = ARGV[2], ARGV[3], ARGV[4]
local s = redis.call('HGET', p..'job:'..jid, 'state')
if s ~= 'queued' and s ~= 'running' then return 0 end
redis.call('HSET', p..'job:'..jid, 'state', 'completed', 'result', result, 'updatedAt', now)
redis.call('SREM', p..'active', jid)
redis.call('ZADD', p..'ended', now, jid)
return 1
`
