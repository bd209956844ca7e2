// Operators' views of the store, each one bounded Lua call: the state of a range of a job's units
// (one character per unit, for the dashboard's grid), jobs counted by state (for /metrics), and the
// credit issued so far (kept by DECIDE in `totals`). Unit codes: UNIT_CODES (shared/ops-views.ts).
import type { Redis } from 'ioredis'
import { definePrefixed } from './define-script.js'

/** Most units one call reads. */
export const MAX_UNITS_PER_READ = 4096
/** Jobs `jobsByState` looks at: the newest this many. */
export const JOBS_SCANNED = 10_000

/**
 * unitStates(prefix, jobId, from, count) -> string, one code per unit `from`..`from+count-1`.
 * Per unit: its state, its replicas' states (leased?) and its results' digests (disagreement?).
 */
const UNIT_STATES = `
local p, jid, from, count = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
for i = from, from + count - 1 do
  local uid = jid..':'..i
  local u = redis.call('HMGET', p..'unit:'..uid, 'state', 'replicaSeq')
  local c = '-'
  if u[1] == 'validated' then c = 'v'
  elseif u[1] == 'failed' then c = 'f'
  elseif u[1] == 'pending' then
    c = 'p'
    local seen, digests = {}, 0
    for _, v in ipairs(redis.call('HVALS', p..'unit:'..uid..':results')) do
      local d = string.match(v, '^([^|]*)|')
      if d and not seen[d] then seen[d] = true; digests = digests + 1 end
    end
    if digests > 1 then c = 'd'
    else
      for r = 1, tonumber(u[2] or '0') do
        if redis.call('HGET', p..'replica:'..uid..':r'..r, 'state') == 'leased' then c = 'l'; break end
      end
    end
  end
  out[#out + 1] = c
end
return table.concat(out)
`

/** jobsByState(prefix, limit) -> { state1, n1, state2, n2, ... } over the newest `limit` jobs. */
const JOBS_BY_STATE = `
local p, limit = ARGV[1], tonumber(ARGV[2])
local counts = {}
for _, id in ipairs(redis.call('ZREVRANGE', p..'jobs', 0, limit - 1)) do
  local s = redis.call('HGET', p..'job:'..id, 'state')
  if s then counts[s] = (counts[s] or 0) + 1 end
end
local out = {}
for s, n in pairs(counts) do out[#out + 1] = s; out[#out + 1] = n end
return out
`

interface ViewRedis {
  cohortUnitStates(...args: (string | number)[]): Promise<string>
  cohortJobsByState(...args: (string | number)[]): Promise<(string | number)[]>
}

export interface OpsViewsInit {
  redis: Redis
  prefix: string
}

export interface OpsViews {
  /** Codes (UNIT_CODES) of units `from`..`from+count-1` of a job; count at most MAX_UNITS_PER_READ. */
  unitStates(jobId: string, from: number, count: number): Promise<string>
  /** Jobs by state, over the newest JOBS_SCANNED jobs still retained. */
  jobsByState(): Promise<Map<string, number>>
  /** Credit issued so far, in ms of estimated compute (net of credit taken back by backtracking). */
  creditIssuedMs(): Promise<number>
}

export function createOpsViews(init: OpsViewsInit): OpsViews {
  const { prefix: p } = init
  if (!('cohortUnitStates' in init.redis)) {
    definePrefixed(init.redis, 'cohortUnitStates', UNIT_STATES)
    definePrefixed(init.redis, 'cohortJobsByState', JOBS_BY_STATE)
  }
  const redis = init.redis as Redis & ViewRedis
  return {
    async unitStates(jobId, from, count) {
      if (!Number.isSafeInteger(from) || from < 0) throw new RangeError('from must be an integer ≥ 0')
      if (!Number.isSafeInteger(count) || count < 0 || count > MAX_UNITS_PER_READ)
        throw new RangeError(`count must be an integer from 0 to ${MAX_UNITS_PER_READ}`)
      if (count === 0) return ''
      return redis.cohortUnitStates(p, jobId, from, count)
    },
    async jobsByState() {
      const flat = await redis.cohortJobsByState(p, JOBS_SCANNED)
      const out = new Map<string, number>()
      for (let i = 0; i + 1 < flat.length; i += 2) out.set(String(flat[i]), Number(flat[i + 1]))
      return out
    },
    async creditIssuedMs() {
      return Number((await redis.hget(`${p}totals`, 'creditMs')) ?? 0)
    },
  }
}
