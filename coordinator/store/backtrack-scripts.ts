// Lua scripts of backtracking (docs/security.md, "Backtracking"): catching an identity, taking its
// leases back, and validating again, one unit at a time, every unit it returned a result for. Each
// is one atomic script and can run any number of times: a coordinator killed between two calls, or
// two coordinators working on one caught identity, leave the same state as one clean run.
import { HELPERS } from './scripts.js'

/** catch(prefix, worker, reason, now) -> 1 when newly caught, 0 when it was caught before. */
export const CATCH = `${HELPERS}
return markCaught(ARGV[2], ARGV[3], ARGV[4])
`

/**
 * revokeLeases(prefix, worker, now) -> number of units given a new replica.
 * Every lease of a caught identity ends now; its units get a replacement replica (it stays in their
 * worker sets, so it never gets them again), and nothing is charged to the units' budgets.
 */
export const REVOKE_LEASES = `${HELPERS}
local worker, now = ARGV[2], ARGV[3]
local lk = p..'worker:'..worker..':leases'
local n = 0
for _, rid in ipairs(redis.call('SMEMBERS', lk)) do
  local r = redis.call('HMGET', p..'replica:'..rid, 'state', 'worker', 'unitId', 'jobId')
  if r[1] == 'leased' and r[2] == worker then
    redis.call('HSET', p..'replica:'..rid, 'state', 'revoked', 'endedAt', now)
    redis.call('ZREM', p..'leases', rid)
    if redis.call('HGET', p..'unit:'..r[3], 'state') == 'pending' and jobActive(r[4]) then
      newReplica(r[3], r[4], now)
      n = n + 1
    end
  end
end
redis.call('DEL', lk)
return n
`

/**
 * backtrackUnit(prefix, uid, worker, reason, now)
 *   -> { unitState, jobId, jobState, discarded, reopened }
 * The caught \`worker\`'s results for unit \`uid\` are discarded: moved from the unit's results to
 * \`unit:{uid}:discarded\` (kept for audit, with the replica marked \`discarded\`). Then:
 * - a pending unit continues; its discarded results no longer count as issued replicas, so the
 *   validator's next evaluation issues what the quorum still needs;
 * - a validated unit that the worker's result backed is reopened (\`pending\` again, one fewer
 *   validated unit, the job's \`generation\` bumped so a merge already under way is refused); the
 *   validator then decides it again by the same rule over the remaining results: it is accepted
 *   again if they still make a quorum, else replicas are issued. A completed job becomes
 *   \`revising\` (active again, its result still readable);
 * - a unit the worker's result did not back, or of a failed or cancelled job: only the discard.
 * In a job under revision, each unit that lost results counts in the identity's entry in
 * \`job:{jid}:revising\` (when, why, how many units), which becomes a revision when the job is merged.
 * \`unitState\` is 'expired' when the unit's data is gone (past retention): nothing can be done.
 * Running it again finds nothing of the worker's to discard and changes nothing.
 */
export const BACKTRACK_UNIT = `${HELPERS}
local uid, worker, reason, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local uk = p..'unit:'..uid
local u = redis.call('HMGET', uk, 'state', 'jobId', 'digest')
local jid = u[2]
if not jid then return { 'expired', '', '', 0, 0 } end
local jk = p..'job:'..jid
local js = redis.call('HGET', jk, 'state') or ''
local rk = uk..':results'
local res = redis.call('HGETALL', rk)
local discarded, backed = 0, false
for i = 1, #res, 2 do
  local rid, val = res[i], res[i + 1]
  if string.match(val, '^[^|]*|([^|]+)|') == worker then
    redis.call('HDEL', rk, rid)
    redis.call('HSET', uk..':discarded', rid, val)
    if redis.call('HGET', p..'replica:'..rid, 'judged') == 'valid' then backed = true end
    redis.call('HSET', p..'replica:'..rid, 'discarded', now, 'discardReason', reason)
    discarded = discarded + 1
  end
end
local state = u[1]
local reopened = 0
if state == 'pending' then
  if discarded > 0 then redis.call('HINCRBY', uk, 'issued', -discarded) end
elseif state == 'validated' and backed
  and (js == 'queued' or js == 'running' or js == 'revising' or js == 'completed') then
  if js == 'completed' then
    redis.call('HSET', jk, 'state', 'revising', 'updatedAt', now)
    jobEvent(jid, 'state', 'state', 'revising')
    redis.call('SADD', p..'active', jid)
    redis.call('ZREM', p..'ended', jid)
    js = 'revising'
  end
  redis.call('HINCRBY', jk, 'generation', 1)
  redis.call('HINCRBY', jk, 'unitsValidated', -1)
  redis.call('HSET', jk, 'updatedAt', now)
  -- Replicas still out (leased, or ready and not yet cancelled) count as issued: their results
  -- are welcome again.
  local out = 0
  local seq = tonumber(redis.call('HGET', uk, 'replicaSeq') or '0')
  for r = 1, seq do
    local st = redis.call('HGET', p..'replica:'..uid..':r'..r, 'state')
    if st == 'ready' or st == 'leased' then out = out + 1 end
  end
  -- The canonical output goes back among the outputs, for job types that compare outputs.
  local canonical = redis.call('HGET', uk, 'output')
  if u[3] and canonical then redis.call('HSETNX', uk..':outputs', u[3], canonical) end
  redis.call('HSET', uk, 'state', 'pending', 'issued', redis.call('HLEN', rk) + out,
    'reopenedFrom', u[3] or '', 'reopenedAt', now)
  redis.call('HDEL', uk, 'digest', 'output', 'validatedAt')
  redis.call('HINCRBY', uk, 'reopened', 1)
  jobProgressEvent(jid)
  reopened = 1
  state = 'pending'
end
-- A job under revision records, per caught identity, when, why and how many of its units lost
-- results of that identity.
if js == 'revising' and discarded > 0 then
  local rv = jk..':revising'
  redis.call('HSETNX', rv, worker..'|at', now)
  redis.call('HSETNX', rv, worker..'|reason', reason)
  redis.call('HINCRBY', rv, worker..'|units', 1)
end
return { state, jid, js, discarded, reopened }
`

/** finishBacktrack(prefix, worker, now) -> 1 when it was due. The worker's backtracking is done. */
export const FINISH_BACKTRACK = `${HELPERS}
local worker, now = ARGV[2], ARGV[3]
if redis.call('ZREM', p..'backtrack:due', worker) == 0 then return 0 end
redis.call('HSET', p..'worker:'..worker, 'backtrackedAt', now)
return 1
`
