// Reported speeds, for the planner: how long validated units really took on the workers, per job
// kind, as a factor of the job type's estimate (measured ms / estimated ms); and which workers
// delivered validated results lately. Only results that agreed with an accepted one count, each
// sample is clamped, each worker keeps one running value, and the factor is the median over workers:
// a worker that lies about its compute time moves the factor by at most one place in that median.
import type { Redis } from 'ioredis'
import { definePrefixed } from './define-script.js'
import { errorFields, type Logger } from '../../shared/index.js'

/** Weight of a new sample in a worker's running value (an EWMA of log(measured / estimated)). */
const ALPHA = 0.25
/** Units estimated below this many ms are not sampled: compute times are whole ms. */
const MIN_ESTIMATE_MS = 10
/** A sample is clamped to [1/16, 16] times the estimate. */
const BOUND = Math.log(16)
/** Workers kept per kind: the most recently seen. */
const KEEP_WORKERS = 32
/** A worker with a validated result this recently counts as online. */
export const ONLINE_WINDOW_MS = 5 * 60_000

/**
 * record(prefix, uid, now, alpha, minEstimateMs, bound, keep, windowMs) -> samples taken
 * Once per validated unit: every result whose digest is the canonical one marks its worker online,
 * and, when the unit's estimate is large enough, folds log(computeMs / unitMs) into that worker's
 * running value for the job's kind.
 */
const RECORD = `
local p, uid, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local alpha, minEst, bound = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local keep, window = tonumber(ARGV[7]), tonumber(ARGV[8])
local u = redis.call('HMGET', p..'unit:'..uid, 'state', 'jobId', 'digest')
if u[1] ~= 'validated' or not u[2] or not u[3] then return 0 end
if redis.call('HSETNX', p..'unit:'..uid, 'speedRecorded', 1) == 0 then return 0 end
local j = redis.call('HMGET', p..'job:'..u[2], 'kind', 'unitMs')
if not j[1] then return 0 end
local est = tonumber(j[2] or '0') or 0
local speed = p..'speed:'..j[1]
local online = p..'speed:online'
local n = 0
local res = redis.call('HGETALL', p..'unit:'..uid..':results')
for i = 1, #res, 2 do
  local digest, w, ms = string.match(res[i + 1], '^([^|]*)|([^|]+)|(%d+)$')
  if w and digest == u[3] then
    redis.call('ZADD', online, now, w)
    if est >= minEst then
      local x = math.log(math.max(tonumber(ms), 1) / est)
      if x > bound then x = bound elseif x < -bound then x = -bound end
      local old = tonumber(redis.call('HGET', speed, w) or '')
      if old then x = old + alpha * (x - old) end
      redis.call('HSET', speed, w, tostring(x))
      redis.call('ZADD', speed..':seen', now, w)
      n = n + 1
    end
  end
end
local extra = redis.call('ZCARD', speed..':seen') - keep
if extra > 0 then
  local gone = redis.call('ZRANGE', speed..':seen', 0, extra - 1)
  redis.call('ZREMRANGEBYRANK', speed..':seen', 0, extra - 1)
  redis.call('HDEL', speed, unpack(gone))
end
redis.call('ZREMRANGEBYSCORE', online, '-inf', now - window)
return n
`

export interface SpeedStoreInit {
  redis: Redis
  prefix: string
  log: Logger
}

/** What the planner knows about the workers. */
export interface Speeds {
  /**
   * Measured ms per estimated ms of this kind's units: the median over recent workers. Undefined
   * while no worker has a validated result of this kind large enough to time.
   */
  speedFactor?: number
  /** Workers that delivered a validated result in the last `ONLINE_WINDOW_MS`. */
  workersOnline: number
}

export interface SpeedStore {
  /** After a unit was validated: sample its agreeing results. Never throws (a failure is logged). */
  recordValidated(unitIds: string[]): Promise<void>
  /** The speeds known for a job kind (`name@version`). */
  speeds(kind: string, now: number): Promise<Speeds>
}

type SpeedRedis = Redis & { cohortRecordSpeed(...args: (string | number)[]): Promise<number> }

/** The median of a non-empty sorted list (the mean of the middle two for an even count). */
function median(sorted: number[]): number {
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2
}

export function createSpeedStore(init: SpeedStoreInit): SpeedStore {
  const { prefix: p, log } = init
  const redis = init.redis as SpeedRedis
  // Defined once per connection (several stores may share one).
  if (!Object.hasOwn(redis, 'cohortRecordSpeed')) definePrefixed(init.redis, 'cohortRecordSpeed', RECORD)
  return {
    async recordValidated(unitIds) {
      // Sent together on the connection, one round trip for a batch's units (not a pipeline: see
      // store.ts on scripts in ioredis pipelines).
      const now = Date.now()
      await Promise.all(
        unitIds.map((unitId) =>
          redis.cohortRecordSpeed(
            p,
            unitId,
            now,
            ALPHA,
            MIN_ESTIMATE_MS,
            BOUND,
            KEEP_WORKERS,
            ONLINE_WINDOW_MS,
          ),
        ),
      ).catch((err: unknown) =>
        log.warn('recording reported speeds failed', { units: unitIds.length, ...errorFields(err) }),
      )
    },
    async speeds(kind, now) {
      const [values, online] = await Promise.all([
        redis.hvals(`${p}speed:${kind}`),
        redis.zcount(`${p}speed:online`, now - ONLINE_WINDOW_MS, '+inf'),
      ])
      const logs = values
        .map(Number)
        .filter(Number.isFinite)
        .sort((a, b) => a - b)
      return {
        ...(logs.length === 0 ? {} : { speedFactor: Math.exp(median(logs)) }),
        workersOnline: online,
      }
    },
  }
}
