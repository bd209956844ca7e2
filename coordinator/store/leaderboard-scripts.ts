// Lua for credit and the leaderboards, kept in step with credit in the same scripts that change it.
//
// Keys (under the store's prefix):
// - `lb:credit`     sorted set: identity → its creditMs, for identities not caught;
// - `lb:team`       sorted set: team → the creditMs of its members not caught;
// - `lb:teamSize`   hash: team → members not caught (a team with none leaves both);
// - `worker:{id}`   fields `name`, `team`, `claimAt` (the last applied claim's signing time);
// - `claim:{id}:{nonce}` a claim's nonce, kept as long as a claim with it could be fresh.
//
// DECIDE gives and takes credit through `addCredit`; a caught identity leaves the boards through
// `leaveBoards` (from catchOne: once, when it is caught). The ZINCRBYs cost O(log n).

/** Lua helpers; they rely on `p` of HELPERS. Prepended to TRUST_HELPERS. */
export const LEADERBOARD_HELPERS = `
local function teamJoin(team, creditMs, n)
  local left = redis.call('HINCRBY', p..'lb:teamSize', team, n)
  if left <= 0 then
    redis.call('HDEL', p..'lb:teamSize', team)
    redis.call('ZREM', p..'lb:team', team)
  else
    redis.call('ZINCRBY', p..'lb:team', creditMs, team)
  end
end
-- Credit for (or, negative, taken back from) identity w: its own, the cluster's total, and the boards
-- unless it was caught.
local function addCredit(w, ms)
  local wk = p..'worker:'..w
  redis.call('HINCRBY', wk, 'creditMs', ms)
  redis.call('HINCRBY', p..'totals', 'creditMs', ms)
  if redis.call('HEXISTS', wk, 'caught') == 1 then return end
  redis.call('ZINCRBY', p..'lb:credit', ms, w)
  local team = redis.call('HGET', wk, 'team')
  if team then redis.call('ZINCRBY', p..'lb:team', ms, team) end
end
-- A caught identity leaves the boards, with its credit (its hash keeps it, for the record).
local function leaveBoards(w)
  local wk = p..'worker:'..w
  redis.call('ZREM', p..'lb:credit', w)
  local team = redis.call('HGET', wk, 'team')
  if team then teamJoin(team, -tonumber(redis.call('HGET', wk, 'creditMs') or '0'), -1) end
end
`

/**
 * claim(prefix, id, name, team ('' for none), at, nonce, nonceTtlMs)
 *   -> 'ok' | 'replayed' | 'stale'
 * Applies an identity's checked claim: its name, and its team with its credit moved from the team it
 * leaves (a caught identity's name and team are recorded, but it counts on no board). 'replayed' when
 * the nonce was seen; 'stale' when a claim signed later was already applied.
 */
export const CLAIM = `
local p = ARGV[1]
local id, name, team, at, nonce, ttl = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7]
${LEADERBOARD_HELPERS}
if not redis.call('SET', p..'claim:'..id..':'..nonce, at, 'NX', 'PX', ttl) then return 'replayed' end
local wk = p..'worker:'..id
local last = tonumber(redis.call('HGET', wk, 'claimAt') or '-1')
if at <= last then return 'stale' end
local old = redis.call('HGET', wk, 'team')
redis.call('HSET', wk, 'name', name, 'claimAt', at)
if team == '' then redis.call('HDEL', wk, 'team') else redis.call('HSET', wk, 'team', team) end
if old == (team ~= '' and team or false) then return 'ok' end
if redis.call('HEXISTS', wk, 'caught') == 0 then
  local c = tonumber(redis.call('HGET', wk, 'creditMs') or '0')
  if old then teamJoin(old, -c, -1) end
  if team ~= '' then teamJoin(team, c, 1) end
end
return 'ok'
`
