// Lua scripts: every state change of replicas and leases is one atomic script, so any number of
// coordinators can share one Redis without locks, and a coordinator killed between two calls
// leaves a consistent state behind.
//
// All scripts take the key prefix as ARGV[1], declared as their one key (define-script.ts): on a
// Redis Cluster the prefix's hash tag puts every key they build from it in one slot
// (docs/redis-cluster.md).
import { TRUST_HELPERS } from './trust-scripts.js'
import { JOB_EVENT_HELPER } from './event-scripts.js'

/** Shared Lua helpers, prepended to scripts that need them. */
export const HELPERS = `
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
-- Active: its units are being computed. A completed job whose result is being revised
-- (backtracking) is active again until its result is merged anew.
local function jobActive(jid)
  local s = redis.call('HGET', p..'job:'..jid, 'state')
  return s == 'queued' or s == 'running' or s == 'revising'
end
${JOB_EVENT_HELPER}
local function unitFail(uid, jid, reason, now)
  redis.call('HSET', p..'unit:'..uid, 'state', 'failed', 'error', reason)
  redis.call('HINCRBY', p..'job:'..jid, 'unitsFailed', 1)
  if jobActive(jid) then
    local err = 'unit '..uid..' failed: '..reason
    redis.call('HSET', p..'job:'..jid, 'state', 'failed', 'error', err, 'updatedAt', now)
    jobEvent(jid, 'state', 'state', 'failed', 'error', err)
    redis.call('SREM', p..'active', jid)
    redis.call('ZADD', p..'ended', now, jid)
  end
end
${TRUST_HELPERS}
-- A lease ended without a result (expired, handed back, renewed past its lifetime): the loss is
-- the worker's, not the unit's. It is counted on the worker (\`released\` or \`expired\` on
-- worker:{id}), and the worker stays in the unit's worker set, so it never gets this unit again.
-- The unit gets a replacement replica unless \`maxWorkers\` distinct workers have now let it go, the
-- operator's budget: then it fails. Nothing is charged when the unit or job had settled.
-- With \`keepEligible\` (a grant lost in transit, which the worker never saw; a handoff refused
-- because the claimant holds another replica of the unit) the loss is charged too, but the worker is
-- neither excluded from the unit nor counted against its budget: a network fault or a peer's refusal
-- cannot leave a unit without eligible workers.
local function leaseEnded(rid, uid, jid, worker, newState, now, maxWorkers, keepEligible)
  redis.call('HSET', p..'replica:'..rid, 'state', newState, 'endedAt', now)
  redis.call('ZREM', p..'leases', rid)
  redis.call('SREM', p..'worker:'..worker..':leases', rid)
  if redis.call('HGET', p..'unit:'..uid, 'state') ~= 'pending' or not jobActive(jid) then return 0 end
  -- A unit left to this worker alone (adaptive replication) goes back to full replication.
  if redis.call('HGET', p..'unit:'..uid, 'solo') == worker then releaseHeld(uid, jid) end
  redis.call('HINCRBY', p..'worker:'..worker, newState, 1)
  redis.call('HINCRBY', p..'unit:'..uid, 'lost', 1)
  if keepEligible then
    redis.call('SREM', p..'unit:'..uid..':workers', worker)
  else
    redis.call('SADD', p..'unit:'..uid..':workers', worker)
    redis.call('SADD', p..'unit:'..uid..':dropped', worker)
    local dropped = redis.call('SCARD', p..'unit:'..uid..':dropped')
    if dropped >= maxWorkers then
      unitFail(uid, jid, dropped..' distinct workers took it and let it go without a result', now)
      return 0
    end
  end
  local rid2 = newReplica(uid, jid, now)
  -- Held for workers with standing for a while (WORK), unless the worker never had the unit.
  if not keepEligible then redis.call('HSET', p..'replica:'..rid2, 'reissue', 1) end
  return 1
end
-- The worker gives a lease back (or lost it in transit): 1 when it still held it.
local function giveBack(rid, worker, now, maxWorkers, keepEligible)
  local r = redis.call('HMGET', p..'replica:'..rid, 'state', 'worker', 'unitId', 'jobId')
  if r[1] ~= 'leased' or r[2] ~= worker then return 0 end
  leaseEnded(rid, r[3], r[4], worker, 'released', now, maxWorkers, keepEligible)
  return 1
end
-- A worker's standing: its validated results net of the leases it let go (never below 0).
local function standing(worker)
  local w = redis.call('HMGET', p..'worker:'..worker, 'valid', 'released', 'expired')
  local earned = tonumber(w[1] or '0') - tonumber(w[2] or '0') - tonumber(w[3] or '0')
  if earned < 0 then earned = 0 end
  return earned
end
-- Whether the operator vouched for this identity as its own host (caught ones get nothing anyway).
local function isVouchedHost(worker)
  return redis.call('HGET', p..'worker:'..worker, 'vouched') == '1'
end
-- Leases a worker may hold at once: base, plus one per \`per\` of standing, up to \`max\`; the
-- operator's own hosts may hold \`max\` from the start.
local function leaseCap(worker, base, per, max)
  if isVouchedHost(worker) then return max end
  local cap = base + math.floor(standing(worker) / per)
  if cap > max then cap = max end
  return cap
end
-- ---- Replica placement (docs/security.md, "Replica placement") ----
-- Which ready replica may go to which worker. A unit's replicas never go to an identity that holds or
-- computed one of them (WORK's own rule), nor to two identities of one owner, nor to two identities
-- of one network unless that network is exempt (recorded as ''). Owner and network are recorded at sign-up as \`owner\` and \`net\` of
-- worker:{id}; an identity without them (issued credentials directly) is its own owner, on no network.
-- The identities a unit's replicas went to are its worker set, less those that let theirs go
-- (unit:{uid}:dropped): those stay excluded themselves but no longer hold a replica for their owner
-- or network.
local placementSeen = {}
local function placementAttrs(w)
  local a = placementSeen[w]
  if not a then
    local r = redis.call('HMGET', p..'worker:'..w, 'owner', 'net')
    a = { r[1] or w, r[2] or '' }
    placementSeen[w] = a
  end
  return a
end
-- Whether no other identity with a replica of unit \`uid\` shares \`w\`'s owner or network; \`leaving\`
-- (a transfer's giver, or nil) is not counted. Whether \`w\` itself may have the unit again is the
-- caller's rule (WORK: not while it holds or computed a replica; TRANSFER: never).
local function placementEligible(uid, w, leaving)
  local me = placementAttrs(w)
  for _, other in ipairs(redis.call('SMEMBERS', p..'unit:'..uid..':workers')) do
    if other ~= w and other ~= leaving and redis.call('SISMEMBER', p..'unit:'..uid..':dropped', other) == 0 then
      local o = placementAttrs(other)
      if o[1] == me[1] then return false end
      if me[2] ~= '' and o[2] == me[2] then return false end
    end
  end
  return true
end
-- A Park-Miller generator seeded per call by the coordinator (ARGV), so picks cannot be predicted
-- from outside and do not depend on Redis's own script PRNG.
local placementState = 1
local function placementSeed(s)
  placementState = (tonumber(s) or 1) % 2147483646 + 1
end
-- A uniform integer in [0, n).
local function placementRandom(n)
  placementState = (placementState * 48271) % 2147483647
  return math.floor((placementState - 1) / 2147483646 * n)
end
-- Up to \`budget\` ready replicas to try, in random order within each priority band, bands in order:
-- all of a band when it fits the budget, else a window of it at a random position (wrapping round).
-- Ready scores are (100 - priority) x 1e12 + a sequence number (readyScore), one band per priority.
local PLACEMENT_BAND = 1000000000000
local function placementCandidates(budget)
  local out = {}
  local from = 0
  local key = p..'ready'
  while #out < budget do
    local head = redis.call('ZRANGE', key, from, from, 'WITHSCORES')
    if #head == 0 then break end
    local band = math.floor(tonumber(head[2]) / PLACEMENT_BAND)
    local count = redis.call('ZCOUNT', key, string.format('%.0f', band * PLACEMENT_BAND),
      '('..string.format('%.0f', (band + 1) * PLACEMENT_BAND))
    if count < 1 then count = 1 end
    local take = math.min(count, budget - #out)
    local start = 0
    if take < count then start = placementRandom(count) end
    local window = redis.call('ZRANGE', key, from + start, from + math.min(count, start + take) - 1)
    if start + take > count then
      for _, rid in ipairs(redis.call('ZRANGE', key, from, from + start + take - count - 1)) do
        window[#window + 1] = rid
      end
    end
    for i = #window, 2, -1 do
      local j = placementRandom(i) + 1
      window[i], window[j] = window[j], window[i]
    end
    for _, rid in ipairs(window) do out[#out + 1] = rid end
    from = from + count
  end
  return out
end
-- A unit's replicas are spread out in time: once one is leased, the next may be leased only after a
-- random delay of spread/2 to spread ms, unless the lease ended without a result meanwhile (its
-- replacement is not a second replica alongside it). The ms left before unit \`uid\` may be leased
-- again (0: now).
local function placementSpreadWait(uid, now)
  local u = redis.call('HMGET', p..'unit:'..uid, 'spreadUntil', 'spreadAfter')
  local at = tonumber(u[1] or '0')
  if at <= now then return 0 end
  local s = redis.call('HGET', p..'replica:'..u[2], 'state')
  if s ~= 'leased' and s ~= 'done' then return 0 end
  return at - now
end
local function placementLeased(uid, rid, now, spread)
  if spread > 0 then
    local half = math.floor(spread / 2)
    redis.call('HSET', p..'unit:'..uid, 'spreadUntil', now + spread - half + placementRandom(half + 1),
      'spreadAfter', rid)
  end
end
-- ---- end of replica placement ----
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
 * work(prefix, worker, want, now, leaseMs, scanLimit, acceptsCsv, burst, perSecond, capBase, capPer,
 *      capMax, lifeFloorMs, lifeFactor, maxWorkers, reissueHoldMs, letGoGraceMs, placementSeed,
 *      spreadMs, hasHolding, grantBytes, idleTtlMs, nonce, nonceTtlMs, held...)
 *   -> { status, retryAfterMs, cap, holding, reclaimed, { {rid, uid, jid, kind, input, deadline}, ... },
 *        idle }
 * One work request, in one call:
 * -1. Replay: the signed request's \`nonce\` is recorded for \`nonceTtlMs\`; seen before, the request is
 *    'replayed' and nothing else is done (the same check as useNonce, in the same round trip).
 * 0. Ban: a caught identity (backtracking) gets status 'banned' and nothing else.
 * 1. Rate: a token bucket per worker (`burst` requests, refilled at `perSecond`), kept in Redis so
 *    every coordinator draws from the same one. Without a token: status 'rate', nothing else done.
 * 2. Lost grants: with `hasHolding` = '1', any lease recorded for the worker that is not in `held`
 *    was lost on the way (a grant whose reply never arrived) and goes back to the queue now, charged
 *    to the worker like a hand-back (but it may get that unit later: it never saw it).
 *    Then, with no replica ready at all, the request ends here: an idle crowd's requests cost the
 *    ban check, the token bucket and this one ZCARD (cap and holding are returned as 0: they are
 *    read only with status 'rate' or 'leases').
 * Idle: a request that got nothing while it had room counts one more empty grant in a row in
 *    idle:{worker} (kept \`idleTtlMs\`, so a worker that went away leaves nothing behind), returned as
 *    \`idle\`; the coordinator derives the worker's wait from it. A grant with units deletes it.
 * 3. Cap: the worker may hold `leaseCap` leases at once (see HELPERS); it gets at most the room left,
 *    and status 'leases' when that is less than it asked for.
 * 4. Lease: ready replicas of the highest priority band first, picked at random within the band
 *    (see "Replica placement" in HELPERS), never a unit this worker holds, computed or let go, nor
 *    one a replica of which went to an identity of the same owner or (non-exempt) network; a unit
 *    leased less than its random spread ago waits (\`retryAfterMs\` says until when, when nothing
 *    was leased), unless the worker is a host the operator vouched for. A replica reissued after a lease ended
 *    without a result goes only to a worker with standing (validated work) during its first
 *    \`reissueHoldMs\`, then to anyone: identities that take work and never do it cannot pass a
 *    unit among themselves while honest workers wait. A caught identity gets nothing; a unit whose
 *    first replica goes to an identity with earned trust has its other replicas held
 *    (\`adaptiveLease\`, trust-scripts.ts). Each lease's deadline is at most its
 *    lifetime bound `maxUntil` = now + max(lifeFloorMs, lifeFactor x the job's unit estimate).
 *    A worker that let a unit go gets it again only once a replica of it has waited `letGoGraceMs`
 *    without anyone else taking it: everyone else gets first pick, so letting go never steers a worker
 *    to a unit, and a small cluster (two workers at quorum 2) still finishes a unit one of them gave
 *    back. Such a grant takes the worker off the unit's let-go list (it counts there again if it lets
 *    go once more). A grant stops once its units' inputs reach \`grantBytes\` (it always has one), so
 *    a grant of many units stays well within a NATS message.
 */
export const WORK = `${HELPERS}
local worker = ARGV[2]
local want = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local leaseMs = tonumber(ARGV[5])
local scan = tonumber(ARGV[6])
local accepts = {}
for k in string.gmatch(ARGV[7], '[^,]+') do accepts[k] = true end
local burst, perSecond = tonumber(ARGV[8]), tonumber(ARGV[9])
local capBase, capPer, capMax = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local lifeFloor, lifeFactor = tonumber(ARGV[13]), tonumber(ARGV[14])
local maxWorkers = tonumber(ARGV[15])
local reissueHold = tonumber(ARGV[16])
local letGoGrace = tonumber(ARGV[17])
placementSeed(ARGV[18])
local spread = tonumber(ARGV[19])
local hasHolding = ARGV[20] == '1'
local grantBytes = tonumber(ARGV[21])
local idleTtl = tonumber(ARGV[22])
local inputBytes = 0
local lk = p..'worker:'..worker..':leases'
if not redis.call('SET', p..'nonce:'..worker..':'..ARGV[23], '1', 'PX', ARGV[24], 'NX') then
  return { 'replayed', 0, 0, 0, 0, {}, 0 }
end
local ik = p..'idle:'..worker
local function idleAgain()
  local n = redis.call('INCR', ik)
  redis.call('PEXPIRE', ik, idleTtl)
  return n
end
-- 0. A caught identity gets no more work.
if isCaught(worker) then return { 'banned', 0, 0, 0, 0, {}, 0 } end
-- 1. Token bucket, in thousandths of a request (integers only in Redis).
local rk = p..'rate:'..worker
local b = redis.call('HMGET', rk, 'tokens', 'at')
local full = burst * 1000
local tokens = tonumber(b[1] or full)
local elapsed = now - tonumber(b[2] or now)
if elapsed < 0 then elapsed = 0 end
tokens = math.min(full, tokens + elapsed * perSecond)
local ttl = math.ceil(full / perSecond) + 1000
if tokens < 1000 then
  redis.call('HSET', rk, 'tokens', tokens, 'at', now)
  redis.call('PEXPIRE', rk, ttl)
  return { 'rate', math.ceil((1000 - tokens) / perSecond), leaseCap(worker, capBase, capPer, capMax),
    redis.call('SCARD', lk), 0, {}, 0 }
end
redis.call('HSET', rk, 'tokens', tokens - 1000, 'at', now)
redis.call('PEXPIRE', rk, ttl)
-- 2. Grants lost in transit.
local reclaimed = 0
if hasHolding then
  local held = {}
  for i = 25, #ARGV do held[ARGV[i]] = true end
  for _, rid in ipairs(redis.call('SMEMBERS', lk)) do
    if not held[rid] then
      local given = giveBack(rid, worker, now, maxWorkers, true)
      if given == 0 then redis.call('SREM', lk, rid) end
      reclaimed = reclaimed + given
    end
  end
end
-- Nothing ready for anyone: the quick way out (see 2. above).
if redis.call('ZCARD', p..'ready') == 0 then
  local idle = 0
  if want > 0 then idle = idleAgain() end
  return { 'ok', 0, 0, 0, reclaimed, {}, idle }
end
local cap = leaseCap(worker, capBase, capPer, capMax)
-- 3. The cap. Entries of leases that ended elsewhere (a result, a cancelled job) are dropped first.
local holding = redis.call('SCARD', lk)
if holding + want > cap then
  for _, rid in ipairs(redis.call('SMEMBERS', lk)) do
    local r = redis.call('HMGET', p..'replica:'..rid, 'state', 'worker')
    if r[1] ~= 'leased' or r[2] ~= worker then redis.call('SREM', lk, rid) end
  end
  holding = redis.call('SCARD', lk)
end
local status = 'ok'
if holding + want > cap then
  status = 'leases'
  want = cap - holding
end
-- 4. Lease.
local out = {}
local jobs = {}
local cands = {}
local established = standing(worker) >= 1
-- The spread keeps one owner's identities from taking a unit's replicas in one burst; the operator's
-- own hosts are not such identities, so they are not held back by it.
local vouchedHost = isVouchedHost(worker)
local spreadWait = 0
-- Credibility (TRUST_HELPERS): a caught identity gets no more units.
if isCaught(worker) then want = 0 end
if want > 0 then cands = placementCandidates(scan) end
for _, rid in ipairs(cands) do
  if #out >= want or inputBytes >= grantBytes then break end
  local r = redis.call('HMGET', p..'replica:'..rid, 'unitId', 'jobId', 'state', 'reissue', 'createdAt', 'anchor')
  local uid, jid = r[1], r[2]
  if not uid or r[3] ~= 'ready' then
    redis.call('ZREM', p..'ready', rid)
  elseif r[4] and not established and now - tonumber(r[5] or '0') < reissueHold then
    -- Held for workers with standing for a while (see above).
  elseif r[6] and credibility(worker) < trust().anchor then
    -- For an anchor only (DECIDE): the unit's results agree and need a trusted identity to settle.
  else
    local j = jobs[jid]
    if not j then
      j = redis.call('HMGET', p..'job:'..jid, 'state', 'kind', 'unitMs')
      jobs[jid] = j
    end
    local us = redis.call('HGET', p..'unit:'..uid, 'state')
    if (j[1] ~= 'queued' and j[1] ~= 'running' and j[1] ~= 'revising') or us ~= 'pending' then
      redis.call('ZREM', p..'ready', rid)
      redis.call('HSET', p..'replica:'..rid, 'state', 'cancelled')
    elseif not accepts[j[2]] then
      -- A kind this worker does not run.
    elseif redis.call('SISMEMBER', p..'unit:'..uid..':workers', worker) == 1 and
        not (now - tonumber(r[5] or now) >= letGoGrace and
          redis.call('SISMEMBER', p..'unit:'..uid..':dropped', worker) == 1) then
      -- This worker holds or computed a replica of the unit, or let it go less than the grace ago.
    elseif not placementEligible(uid, worker, nil) then
      -- Placement: an identity of this worker's owner or network has a replica of the unit.
    elseif not vouchedHost and placementSpreadWait(uid, now) > 0 then
      local wait = placementSpreadWait(uid, now)
      if spreadWait == 0 or wait < spreadWait then spreadWait = wait end
    else
      -- A worker that let the unit go and takes it again counts as letting go afresh (see above).
      redis.call('SREM', p..'unit:'..uid..':dropped', worker)
      placementLeased(uid, rid, now, spread)
      redis.call('ZREM', p..'ready', rid)
      redis.call('SADD', p..'unit:'..uid..':workers', worker)
      -- Adaptive replication (TRUST_HELPERS): a trusted identity's first replica holds the others.
      adaptiveLease(uid, jid, worker)
      local maxUntil = now + math.max(lifeFloor, lifeFactor * tonumber(j[3] or '0'))
      local deadline = math.min(now + leaseMs, maxUntil)
      redis.call('HSET', p..'replica:'..rid, 'state', 'leased', 'worker', worker, 'deadline', deadline,
        'leasedAt', now, 'maxUntil', maxUntil)
      redis.call('ZADD', p..'leases', deadline, rid)
      redis.call('SADD', lk, rid)
      if j[1] == 'queued' then
        redis.call('HSET', p..'job:'..jid, 'state', 'running', 'updatedAt', now)
        jobEvent(jid, 'state', 'state', 'running')
        j[1] = 'running'
      end
      local input = redis.call('HGET', p..'unit:'..uid, 'input')
      inputBytes = inputBytes + #input
      out[#out + 1] = { rid, uid, jid, j[2], input, tostring(deadline) }
    end
  end
end
-- The cap held the grant back only if there was more to grant than the room it left.
if status == 'leases' and #out < want then status = 'ok' end
local idle = 0
if #out > 0 then
  spreadWait = 0
  redis.call('DEL', ik)
elseif status == 'ok' and want > 0 then
  idle = idleAgain()
end
return { status, spreadWait, cap, holding + #out, reclaimed, out, idle }
`

/**
 * transfer(prefix, from, to, now, leaseMs, maxWorkers, rid...)
 *   -> { { {rid, uid, jid, kind, input, deadline}, ... }, { refused rid, ... }, givenBack }
 * Moves leases `from` holds to `to`, as `from` signed (a handoff, a steal). A replica of a unit `to`
 * already holds, computed or let go is never moved: it goes back to the queue at once (no one waits
 * for its deadline) and is refused, as is a replica `from` no longer holds or whose lifetime is
 * over. A moved lease keeps its replica's lifetime bound: passing it around does not extend it.
 * Placement holds for transfers too: a replica is not moved to an identity of the same owner or
 * network as another holder of its unit (the giver does not count, it is leaving); it stays with the
 * giver, so asking for it costs the giver nothing.
 */
export const TRANSFER = `${HELPERS}
local from, to = ARGV[2], ARGV[3]
local now = tonumber(ARGV[4])
local leaseMs = tonumber(ARGV[5])
local maxWorkers = tonumber(ARGV[6])
local moved, refused, back = {}, {}, 0
-- Nothing moves to or from a caught identity (its leases are revoked by backtracking).
local blocked = isCaught(from) or isCaught(to)
for i = 7, #ARGV do
  local rid = ARGV[i]
  local r = redis.call('HMGET', p..'replica:'..rid, 'state', 'worker', 'unitId', 'jobId', 'maxUntil')
  local uid, jid = r[3], r[4]
  local maxUntil = tonumber(r[5] or '0')
  local held = not blocked and r[1] == 'leased' and r[2] == from and uid and jobActive(jid)
    and redis.call('HGET', p..'unit:'..uid, 'state') == 'pending' and maxUntil > now
  if not held then
    refused[#refused + 1] = rid
  elseif redis.call('SISMEMBER', p..'unit:'..uid..':workers', to) == 1 then
    back = back + giveBack(rid, from, now, maxWorkers, true)
    refused[#refused + 1] = rid
  elseif not placementEligible(uid, to, from) then
    -- Placement: refused, and the giver keeps the lease (a Sybil asking for it costs the giver nothing).
    refused[#refused + 1] = rid
  else
    local deadline = math.min(now + leaseMs, maxUntil)
    redis.call('SREM', p..'unit:'..uid..':workers', from)
    redis.call('SADD', p..'unit:'..uid..':workers', to)
    -- A unit left to \`from\` alone (adaptive replication) stays so only if \`to\` may hold it alone.
    if redis.call('HGET', p..'unit:'..uid, 'solo') == from then
      if soloEligible(jid, to) then redis.call('HSET', p..'unit:'..uid, 'solo', to) else releaseHeld(uid, jid) end
    end
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

/**
 * renew(prefix, worker, now, leaseMs, lifeFloorMs, maxWorkers, rid...)
 *   -> { { rid, deadline-or-"lost", ... }, refusedPastLifetime }
 * A renewal never moves a deadline past the replica's lifetime bound. Once that bound is reached the
 * renewal is refused: the lease ends as expired (charged to the worker) and the replica is issued
 * again to another worker.
 */
export const RENEW = `${HELPERS}
local worker = ARGV[2]
local now = tonumber(ARGV[3])
local leaseMs = tonumber(ARGV[4])
local lifeFloor = tonumber(ARGV[5])
local maxWorkers = tonumber(ARGV[6])
local out = {}
local ended = 0
local isBanned = isCaught(worker)
for i = 7, #ARGV do
  local rid = ARGV[i]
  local r = redis.call('HMGET', p..'replica:'..rid, 'state', 'worker', 'jobId', 'unitId', 'maxUntil', 'leasedAt')
  local ok = not isBanned and r[1] == 'leased' and r[2] == worker and jobActive(r[3])
    and redis.call('HGET', p..'unit:'..r[4], 'state') == 'pending'
  local deadline = now + leaseMs
  if ok then
    local maxUntil = tonumber(r[5] or '0')
    if maxUntil == 0 then
      -- Leased before lifetimes were recorded: bound it from its first lease.
      maxUntil = tonumber(r[6] or now) + lifeFloor
      redis.call('HSET', p..'replica:'..rid, 'maxUntil', maxUntil)
    end
    if deadline > maxUntil then deadline = maxUntil end
    if deadline <= now then
      leaseEnded(rid, r[4], r[3], worker, 'expired', now, maxWorkers, false)
      ended = ended + 1
      ok = false
    end
  end
  if ok then
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
return { out, ended }
`

/** release(prefix, worker, now, maxWorkers, rid...) -> number released. The worker hands leases back. */
export const RELEASE = `${HELPERS}
local worker = ARGV[2]
local now = tonumber(ARGV[3])
local maxWorkers = tonumber(ARGV[4])
local n = 0
for i = 5, #ARGV do
  n = n + giveBack(ARGV[i], worker, now, maxWorkers, false)
end
return n
`

/** expire(prefix, now, limit, maxWorkers) -> number of leases that had passed their deadline. */
export const EXPIRE = `${HELPERS}
local now = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local maxWorkers = tonumber(ARGV[4])
local rids = redis.call('ZRANGEBYSCORE', p..'leases', '-inf', now, 'LIMIT', 0, limit)
for _, rid in ipairs(rids) do
  local r = redis.call('HMGET', p..'replica:'..rid, 'state', 'worker', 'unitId', 'jobId')
  if r[1] == 'leased' then
    leaseEnded(rid, r[3], r[4], r[2], 'expired', now, maxWorkers, false)
  else
    redis.call('ZREM', p..'leases', rid)
  end
end
return #rids
`

/**
 * submit(prefix, rid, worker, uid, digest, output, now, computeMs)
 *   -> { status, reason-or-unit-state }
 * Stores a result once per replica: a second submission of the same replica is a duplicate. The
 * worker's claimed compute time is kept as information only, bounded by how long the replica has
 * been leased: credit comes from the job type's estimate (see DECIDE). A caught identity's results
 * are refused. A stored result enters the worker's reverse index (\`worker:{id}:units\`).
 */
export const SUBMIT = `${HELPERS}
local rid, worker, uid, digest, output = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local now, computeMs = tonumber(ARGV[7]), tonumber(ARGV[8])
if isCaught(worker) then
  return { 'rejected', 'this identity is banned: '..(redis.call('HGET', p..'worker:'..worker, 'caughtReason') or '') }
end
local r = redis.call('HMGET', p..'replica:'..rid, 'unitId', 'jobId', 'state', 'worker', 'leasedAt')
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
local heldMs = now - tonumber(r[5] or now)
if heldMs < 0 then heldMs = 0 end
if computeMs > heldMs then computeMs = heldMs end
redis.call('HSET', p..'replica:'..rid, 'state', 'done', 'digest', digest, 'computeMs', computeMs, 'doneAt', now)
redis.call('ZREM', p..'leases', rid)
redis.call('SREM', p..'worker:'..worker..':leases', rid)
local us = redis.call('HGET', p..'unit:'..uid, 'state')
if us == 'pending' then
  redis.call('HSET', p..'unit:'..uid..':results', rid, digest..'|'..worker..'|'..computeMs)
  redis.call('HSETNX', p..'unit:'..uid..':outputs', digest, output)
  -- The reverse index: every unit this worker has a result for, so that all of them can be validated
  -- again if it is caught. Entries of units whose data has expired are dropped as they are met: each
  -- submission looks at the two oldest entries and drops them, or moves them to the back.
  local wk = p..'worker:'..worker..':units'
  for _, o in ipairs(redis.call('ZRANGE', wk, 0, 1)) do
    if redis.call('EXISTS', p..'unit:'..o) == 0 then redis.call('ZREM', wk, o)
    else redis.call('ZADD', wk, now, o) end
  end
  redis.call('ZADD', wk, now, uid)
end
redis.call('HINCRBY', p..'worker:'..worker, 'results', 1)
return { 'accepted', redis.call('HGET', p..'unit:'..uid, 'state') }
`

/**
 * decide(prefix, uid, now, nResults, draw, group...)
 *   -> { verdict, validated, failed, total, { caught identity, ... }, note }
 * The validator's verdict on one unit, given the groups of agreeing results it computed over
 * `nResults` results: each group is `digest|replicaId,replicaId,...`. `draw` is a uniform random
 * number in [0, 1), the spot-check draw. Returns 'stale' when more results arrived meanwhile, so the
 * caller evaluates again. `note` is 'solo' for a result accepted alone (adaptive replication),
 * 'check' when such a result was drawn for a spot check.
 *
 * A group is acceptable (docs/security.md, "Credibility and adaptive replication") when its
 * credibility reaches the job's `minCredibility`, it holds at least one identity at the anchor
 * level (or, when the operator allows it, `unanchored` identities), and it has `quorum` members —
 * or it is the one result of a unit left to a trusted identity and not drawn for a check (a checked
 * unit needs two). Caught identities count for nothing. The unit is validated when exactly one group
 * is acceptable; every identity whose result disagreed is then caught. Otherwise more replicas are
 * issued, up to `maxReplicas`, and then the unit fails.
 */
export const DECIDE = `${HELPERS}
local uid = ARGV[2]
local now = ARGV[3]
local nResults = tonumber(ARGV[4])
local draw = tonumber(ARGV[5])
local u = redis.call('HMGET', p..'unit:'..uid, 'state', 'jobId', 'issued', 'solo', 'check', 'drawn')
local jid = u[2]
if not jid then return { 'unknown', 0, 0, 0, {}, '' } end
local function counts(verdict, caught, note)
  local j = redis.call('HMGET', p..'job:'..jid, 'unitsValidated', 'unitsFailed', 'unitsTotal')
  return { verdict, tonumber(j[1] or '0'), tonumber(j[2] or '0'), tonumber(j[3] or '0'), caught or {}, note or '' }
end
if u[1] ~= 'pending' then return counts('settled') end
if redis.call('HLEN', p..'unit:'..uid..':results') ~= nResults then return counts('stale') end
local jf = redis.call('HMGET', p..'job:'..jid, 'quorum', 'maxReplicas', 'minCredibility', 'spotCheckRate')
local quorum = tonumber(jf[1])
local maxReplicas = tonumber(jf[2])
local target = tonumber(jf[3] or trust().target)
local rate = tonumber(jf[4] or trust().rate)
local solo, check = u[4], u[5]
local note = ''
-- Spot check: the one result of a unit left to a trusted identity is checked at the job's rate,
-- drawn once, after the result is in (nothing the identity saw depends on it): the held replicas go
-- out, and the unit then needs at least two agreeing identities.
if solo and not u[6] and nResults == 1 then
  redis.call('HSET', p..'unit:'..uid, 'drawn', 1)
  if draw < rate then
    releaseHeld(uid, jid)
    redis.call('HSET', p..'unit:'..uid, 'check', solo)
    check, solo, note = solo, nil, 'check'
  end
end
local need = quorum
if check and need < 2 then need = 2 end
local res = redis.call('HGETALL', p..'unit:'..uid..':results')
local workerOf = {}
for i = 1, #res, 2 do workerOf[res[i]] = string.match(res[i + 1], '^[^|]+|([^|]+)|') end
local groups = {}
local accepted, contested = nil, false
for gi = 6, #ARGV do
  local digest, list = string.match(ARGV[gi], '^([^|]*)|(.*)$')
  local g = { digest = digest, rids = {}, members = {}, crs = {}, anchored = false }
  for rid in string.gmatch(list or '', '[^,]+') do
    -- A result discarded meanwhile (backtracking) makes the agreement stale.
    if not workerOf[rid] then return counts('stale') end
    g.rids[#g.rids + 1] = rid
    local w = workerOf[rid]
    local cr = w and credibility(w) or 0
    if cr > 0 then
      g.members[#g.members + 1] = w
      g.crs[#g.crs + 1] = cr
      if cr >= trust().anchor then g.anchored = true end
    end
  end
  g.size = #g.members
  g.cr = 0
  if g.size > 0 then g.cr = groupCredibility(g.crs, 0) end
  g.alone = solo ~= nil and g.size == 1 and g.members[1] == solo
  g.ok = g.cr >= target and (g.size >= need or g.alone)
    and (g.anchored or (trust().unanchored > 0 and g.size >= trust().unanchored))
  if g.ok then
    if accepted then contested = true else accepted = g end
  end
  groups[#groups + 1] = g
end
if accepted and not contested then
  local g = accepted
  redis.call('HSET', p..'unit:'..uid, 'state', 'validated', 'digest', g.digest, 'validatedAt', now)
  moveReplicas(uid, jid, 'held', 'cancelled')
  redis.call('HINCRBY', p..'job:'..jid, 'unitsValidated', 1)
  redis.call('HSET', p..'job:'..jid, 'updatedAt', now)
  jobUnitEvent(jid, uid)
  -- Trust: every worker whose result agreed gains credit (addCredit: also on the leaderboards), the job type's estimate of the unit's
  -- compute time (not what the worker claims: that is kept apart, as information); the others lose
  -- standing and are caught (markCaught).
  -- Each result is judged once (\`judged\` on its replica); a unit validated again after
  -- backtracking judges anew only the results whose verdict changed, so nothing is counted twice.
  local unitMs = tonumber(redis.call('HGET', p..'job:'..jid, 'unitMs') or '0')
  local agreeing = {}
  for _, rid in ipairs(g.rids) do agreeing[rid] = true end
  local caught = {}
  local newlyValid = {}
  for i = 1, #res, 2 do
    local rid, val = res[i], res[i + 1]
    local w, ms = string.match(val, '^[^|]+|([^|]+)|(%d+)$')
    local wk = p..'worker:'..w
    local was = redis.call('HGET', p..'replica:'..rid, 'judged')
    if agreeing[rid] then
      if was ~= 'valid' then
        redis.call('HINCRBY', wk, 'valid', 1)
        addCredit(w, unitMs)
        redis.call('HINCRBY', wk, 'claimedMs', tonumber(ms))
        if was == 'invalid' then redis.call('HINCRBY', wk, 'invalid', -1) end
        redis.call('HSET', p..'replica:'..rid, 'judged', 'valid')
        newlyValid[w] = true
      end
    elseif was ~= 'invalid' then
      redis.call('HINCRBY', wk, 'invalid', 1)
      if was == 'valid' then
        redis.call('HINCRBY', wk, 'valid', -1)
        addCredit(w, -unitMs)
        redis.call('HINCRBY', wk, 'claimedMs', -tonumber(ms))
      end
      redis.call('HSET', p..'replica:'..rid, 'judged', 'invalid')
      local reason = 'its result for unit '..uid..' disagreed with the accepted one'
      if w == check then reason = 'failed a spot check: '..reason end
      if markCaught(w, reason, now) == 1 then caught[#caught + 1] = w end
    end
  end
  -- Checked results: the identity under a spot check, and each member the rest of the group would
  -- have vouched for (its credibility without that member reaches the anchor level). A result
  -- accepted alone was checked by nobody and earns nothing.
  if g.size >= 2 then
    for i, w in ipairs(g.members) do
      if newlyValid[w] and (w == check or groupCredibility(g.crs, i) >= trust().anchor) then
        redis.call('HINCRBY', p..'worker:'..w, 'passed', 1)
        if w == check then redis.call('HINCRBY', p..'worker:'..w, 'spotPassed', 1) end
      end
    end
  end
  if g.alone then note = 'solo' end
  -- Keep only the canonical output.
  local out = redis.call('HGET', p..'unit:'..uid..':outputs', g.digest)
  redis.call('DEL', p..'unit:'..uid..':outputs')
  redis.call('HSET', p..'unit:'..uid, 'output', out)
  return counts('validated', caught, note)
end
-- Not accepted: a unit left to one identity goes back to full replication.
releaseHeld(uid, jid)
local issued = tonumber(u[3])
local best = nil
for _, g in ipairs(groups) do
  if not best or g.size > best.size or (g.size == best.size and g.cr > best.cr) then best = g end
end
local bestSize = 0
if best then bestSize = best.size end
local outstanding = issued - nResults
local function why()
  local msg = 'no quorum of '..need..' agreeing results after '..issued..' replicas'
  if contested then
    return msg..': two groups of agreeing results each reached credibility '..target
  end
  if best and bestSize >= need then
    msg = msg..' reached credibility '..target..' (best: '..bestSize..' agreeing at '
      ..string.format('%.6g', best.cr)
    if not best.anchored then msg = msg..', none of them trusted' end
    msg = msg..')'
  end
  return msg
end
if bestSize + outstanding + (maxReplicas - issued) < need
  or (outstanding <= 0 and issued >= maxReplicas) then
  unitFail(uid, jid, why(), now)
  return counts('failed', {}, note)
end
local needed = need - bestSize - outstanding
if needed < 1 and outstanding <= 0 then needed = 1 end
if needed > 0 then
  if needed > maxReplicas - issued then needed = maxReplicas - issued end
  -- The unit's first replicas did not settle it (they disagree, or agree without an anchor or enough
  -- credibility): only an anchor can settle it now, and more new identities would use up
  -- \`maxReplicas\` until the unit failed (fast colluders at f = 30 % did). So replicas issued here go
  -- only to identities at the anchor level (WORK), unless the operator lets agreeing new identities
  -- validate (\`unanchored\`).
  local forAnchor = trust().unanchored == 0
  for i = 1, needed do
    local rid2 = newReplica(uid, jid, now)
    if forAnchor then redis.call('HSET', p..'replica:'..rid2, 'anchor', 1) end
  end
  redis.call('HINCRBY', p..'unit:'..uid, 'issued', needed)
  redis.call('HINCRBY', p..'job:'..jid, 'replicasExtra', needed)
  return counts('reissued', {}, note)
end
return counts('waiting', {}, note)
`

/**
 * credibility(prefix, worker) -> { credibility, earned } as strings: what DECIDE and WORK use now.
 */
export const CREDIBILITY = `${HELPERS}
return { tostring(credibility(ARGV[2])), tostring(earnedCredibility(ARGV[2])) }
`

/** cancel(prefix, jid, now) -> previous state. Only active jobs can be cancelled. */
export const CANCEL = `${HELPERS}
local jid, now = ARGV[2], ARGV[3]
local s = redis.call('HGET', p..'job:'..jid, 'state')
if s == 'queued' or s == 'running' then
  redis.call('HSET', p..'job:'..jid, 'state', 'cancelled', 'updatedAt', now)
  jobEvent(jid, 'state', 'state', 'cancelled')
  redis.call('SREM', p..'active', jid)
  redis.call('ZADD', p..'ended', now, jid)
end
return s
`

/**
 * complete(prefix, jid, resultJson, now, generation) -> 1 when the job moved to completed, else 0.
 * \`generation\` is the job's generation when its outputs were read: a unit reopened since
 * (backtracking) makes the merge stale and it is refused. A job being revised records the revision:
 * one entry per caught identity in \`revisions\` (at most 50 kept), \`changed\` when the result differs.
 */
export const COMPLETE = `${HELPERS}
local jid, result, now, gen = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local jk = p..'job:'..jid
local j = redis.call('HMGET', jk, 'state', 'generation', 'unitsValidated', 'unitsTotal', 'result', 'revisions')
local s = j[1]
if s ~= 'queued' and s ~= 'running' and s ~= 'revising' then return 0 end
if (j[2] or '0') ~= gen or j[3] ~= j[4] then return 0 end
if s == 'revising' then
  local rk = jk..':revising'
  local h = redis.call('HGETALL', rk)
  local by = {}
  for i = 1, #h, 2 do
    local w, f = string.match(h[i], '^(.*)|(%a+)$')
    by[w] = by[w] or {}
    by[w][f] = h[i + 1]
  end
  local revs = cjson.decode(j[6] or '[]')
  local fresh, units = {}, 0
  for _, e in pairs(by) do
    fresh[#fresh + 1] = { at = tonumber(e.at), reason = e.reason, units = tonumber(e.units),
      revisedAt = tonumber(now), changed = j[5] ~= result }
  end
  table.sort(fresh, function(a, b) return a.at < b.at end)
  for _, e in ipairs(fresh) do
    revs[#revs + 1] = e
    units = units + (e.units or 0)
  end
  while #revs > 50 do table.remove(revs, 1) end
  if #revs > 0 then redis.call('HSET', jk, 'revisions', cjson.encode(revs)) end
  redis.call('HINCRBY', jk, 'revisionsTotal', #fresh)
  redis.call('DEL', rk)
  local changed = '0'
  if j[5] ~= result then changed = '1' end
  jobEvent(jid, 'revised', 'changed', changed, 'revisions', #fresh, 'units', units)
else
  jobEvent(jid, 'result')
end
redis.call('HSET', p..'job:'..jid, 'state', 'completed', 'result', result, 'updatedAt', now)
jobEvent(jid, 'state', 'state', 'completed')
redis.call('SREM', p..'active', jid)
redis.call('ZADD', p..'ended', now, jid)
return 1
`
