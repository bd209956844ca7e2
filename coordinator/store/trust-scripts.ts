// Lua of earned trust (docs/security.md, "Credibility and adaptive replication"): each identity's
// credibility from its checked history, the credibility of a group of agreeing results, the one
// place an identity is caught, and adaptive replication (a trusted identity's unit held at one
// replica). Prepended to the lease scripts through HELPERS, after `p`, readyScore and newReplica.
//
// Keys: `<p>trust:params` (hash: f, vouched, anchor, unanchored, target, rate — written by every
// coordinator at start), `<p>worker:<id>` (fields passed, spotPassed, vouched, caught, caughtAt,
// caughtReason), `<p>caught` (zset: identity -> when caught), `<p>backtrack:due` (zset: caught
// identities whose backtracking has not finished, coordinator/backtracker.ts), `<p>vouched` (set).
import { LEADERBOARD_HELPERS } from './leaderboard-scripts.js'

/** Lua helpers; they rely on `p`, `readyScore` and `newReplica` of HELPERS. */
export const TRUST_HELPERS = `${LEADERBOARD_HELPERS}
local E = 2.718281828459045
local trustParams
local function trust()
  if not trustParams then
    local t = redis.call('HMGET', p..'trust:params', 'f', 'vouched', 'anchor', 'unanchored', 'target', 'rate')
    trustParams = { f = tonumber(t[1] or '0.1'), vouched = tonumber(t[2] or '0.99999'),
      anchor = tonumber(t[3] or '0.99'), unanchored = tonumber(t[4] or '0'),
      target = tonumber(t[5] or '0.9999'), rate = tonumber(t[6] or '0.1') }
  end
  return trustParams
end
-- Earned credibility (Sarmenta, spot-checking with blacklisting): 1 - f for a new identity;
-- 1 - f / (k e (1 - f)) after k checked results with no failure (never below 1 - f); 0 once caught.
local function earnedCredibility(w)
  local h = redis.call('HMGET', p..'worker:'..w, 'caught', 'passed')
  if h[1] then return 0 end
  local f = trust().f
  local k = tonumber(h[2] or '0')
  local cr = 1 - f
  if k >= 1 then
    local c = 1 - f / (k * E * (1 - f))
    if c > cr then cr = c end
  end
  return cr
end
-- Credibility: the earned one, raised to \`vouched\` for the operator's own hosts (never once caught).
local function credibility(w)
  local cr = earnedCredibility(w)
  if cr > 0 and cr < trust().vouched and redis.call('HGET', p..'worker:'..w, 'vouched') == '1' then
    cr = trust().vouched
  end
  return cr
end
-- Credibility of a group of agreeing results from independent identities with credibilities \`crs\`
-- (leaving out index \`skip\`): P / (P + Q), P the chance all are right, Q the chance all are wrong
-- (colluding saboteurs give the same wrong answer). An empty group has 0.5.
local function groupCredibility(crs, skip)
  local P, Q = 1, 1
  for i, c in ipairs(crs) do
    if i ~= skip then
      P = P * c
      Q = Q * (1 - c)
    end
  end
  if P + Q <= 0 then return 0 end
  return P / (P + Q)
end
-- The caught event, in one place: the identity's credibility drops to zero for good and it gets no
-- more work (\`caught\` on worker:{id}, the time it was caught), it is listed in \`caught\` and in
-- \`backtrack:due\` until everything it returned a result for has been validated again
-- (coordinator/backtracker.ts sweeps it). 1 when newly caught, 0 when it was already.
local function catchOne(w, reason, now)
  if redis.call('HGET', p..'worker:'..w, 'caught') then return 0 end
  redis.call('HSET', p..'worker:'..w, 'caught', now, 'caughtAt', now, 'caughtReason', string.sub(reason, 1, 500))
  redis.call('ZADD', p..'caught', now, w)
  redis.call('ZADD', p..'backtrack:due', now, w)
  leaveBoards(w)
  return 1
end
-- The owner loses its credibility too: when the identity is linked to an owner key, the owner is
-- marked caught (\`owner:{o}\`; identities that sign up under it later are born caught, see
-- credentials/volunteer-attributes.ts) and every other identity of that owner is caught and
-- backtracked with it (they leave through the backtracker's sweep of \`backtrack:due\`).
local function markCaught(w, reason, now)
  if catchOne(w, reason, now) == 0 then return 0 end
  local o = redis.call('HGET', p..'worker:'..w, 'owner')
  if o and o ~= w and redis.call('HSETNX', p..'owner:'..o, 'caught', now) == 1 then
    redis.call('HSET', p..'owner:'..o, 'reason', 'its identity '..w..' was caught')
    for _, x in ipairs(redis.call('SMEMBERS', p..'owner:'..o..':ids')) do
      catchOne(x, 'another identity of its owner was caught ('..w..'): '..reason, now)
    end
  end
  return 1
end
local function isCaught(w)
  return redis.call('HEXISTS', p..'worker:'..w, 'caught') == 1
end
-- Replicas of a unit in state \`from\` get state \`to\` (ready ones leave the ready queue; held ones
-- put back in it when \`to\` is 'ready'). Returns how many.
local function moveReplicas(uid, jid, from, to)
  local seq = tonumber(redis.call('HGET', p..'unit:'..uid, 'replicaSeq') or '0')
  local n = 0
  for i = 1, seq do
    local rid = uid..':r'..i
    if redis.call('HGET', p..'replica:'..rid, 'state') == from then
      redis.call('HSET', p..'replica:'..rid, 'state', to)
      if from == 'ready' then redis.call('ZREM', p..'ready', rid) end
      if to == 'ready' then redis.call('ZADD', p..'ready', readyScore(jid), rid) end
      n = n + 1
    end
  end
  return n
end
-- Adaptive replication: when a unit's first replica is leased to an identity whose earned
-- credibility reaches the job's target (and the anchor level), the unit's other replicas are held
-- (state 'held', out of the ready queue): its result may be accepted alone (DECIDE).
-- Never for a job that asks every unit to be checked (rate 1), or that allows a single replica
-- (maxReplicas 1: a spot check could not be made).
local function soloEligible(jid, w)
  local j = redis.call('HMGET', p..'job:'..jid, 'minCredibility', 'spotCheckRate', 'maxReplicas')
  local target = tonumber(j[1] or trust().target)
  if tonumber(j[2] or trust().rate) >= 1 or tonumber(j[3] or '0') < 2 then return false end
  local cr = earnedCredibility(w)
  return cr >= target and cr >= trust().anchor
end
local function adaptiveLease(uid, jid, w)
  if redis.call('HSETNX', p..'unit:'..uid, 'taken', 1) == 0 then return end
  if not soloEligible(jid, w) then return end
  local held = moveReplicas(uid, jid, 'ready', 'held')
  redis.call('HSET', p..'unit:'..uid, 'solo', w, 'held', held)
end
-- The unit is no longer left to one identity: its held replicas go to the ready queue.
local function releaseHeld(uid, jid)
  redis.call('HDEL', p..'unit:'..uid, 'solo')
  if tonumber(redis.call('HGET', p..'unit:'..uid, 'held') or '0') == 0 then return 0 end
  redis.call('HSET', p..'unit:'..uid, 'held', 0)
  return moveReplicas(uid, jid, 'held', 'ready')
end
`

/**
 * trustParams(prefix, f, vouched, anchor, unanchored, target, rate) -> 'OK'. The deployment's trust
 * parameters, read by every script (the coordinator started last sets them).
 */
export const SET_TRUST_PARAMS = `
local p = ARGV[1]
redis.call('HSET', p..'trust:params', 'f', ARGV[2], 'vouched', ARGV[3], 'anchor', ARGV[4],
  'unanchored', ARGV[5], 'target', ARGV[6], 'rate', ARGV[7])
return 'OK'
`

/** vouch(prefix, id...) -> number newly vouched. The operator's own hosts. */
export const VOUCH = `
local p = ARGV[1]
local n = 0
for i = 2, #ARGV do
  redis.call('HSET', p..'worker:'..ARGV[i], 'vouched', 1)
  n = n + redis.call('SADD', p..'vouched', ARGV[i])
end
return n
`
