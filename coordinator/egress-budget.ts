// A per-identity egress budget for data served over NATS (`module.get`, `chunk.get`): a token bucket
// in Redis, so every coordinator of a deployment charges the same bucket. It holds one minute's worth
// of bytes and refills continuously. A request is served while the bucket is not empty and its bytes
// are then taken, so the bucket may go into debt by at most one reply (a module is larger than a
// small budget); a request that finds it empty is refused with the time until it is not.
import type { Redis } from 'ioredis'
import { RetryLaterError } from './nats-service.js'

export interface EgressBudgetInit {
  redis: Redis
  /** Key prefix, e.g. `cohort:`; buckets live at `<prefix>egress:<worker>`. */
  prefix: string
  /** Bytes one identity may be served per minute (also the bucket's size). */
  bytesPerMinute: number
}

export type EgressCharge = { ok: true } | { ok: false; retryAfterMs: number }

export interface EgressBudget {
  /** Take `bytes` from `worker`'s bucket, or say how long until it may be served again. */
  charge(worker: string, bytes: number, now: number): Promise<EgressCharge>
}

/**
 * Takes `bytes` from `worker`'s bucket for a request being served, or refuses the request: a
 * RetryLaterError, whose reply tells the worker how long to wait.
 */
export async function chargeOrRefuse(
  budget: EgressBudget,
  worker: string,
  bytes: number,
  now: number,
): Promise<void> {
  const c = await budget.charge(worker, bytes, now)
  if (!c.ok) throw new RetryLaterError(`egress budget spent: retry in ${c.retryAfterMs} ms`, c.retryAfterMs)
}

/**
 * charge(key, capacity, ratePerMs, bytes, now) -> 0 when served, else the ms until the bucket is not
 * empty. A bucket left alone refills to full and its key expires then (a missing key is a full one).
 */
const CHARGE = `
local cap, rate, bytes, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(b[1]), tonumber(b[2])
if tokens == nil or at == nil then tokens, at = cap, now end
if now > at then tokens = math.min(cap, tokens + (now - at) * rate) end
if tokens <= 0 then return math.max(1, math.ceil((1 - tokens) / rate)) end
tokens = tokens - bytes
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(math.max(now, at)))
redis.call('PEXPIRE', KEYS[1], math.ceil((cap - tokens) / rate) + 1000)
return 0
`

interface ScriptedRedis extends Redis {
  cohortEgressCharge(key: string, ...args: (string | number)[]): Promise<number>
}

export function createEgressBudget(init: EgressBudgetInit): EgressBudget {
  const redis = init.redis as ScriptedRedis
  if (!('cohortEgressCharge' in init.redis))
    init.redis.defineCommand('cohortEgressCharge', { numberOfKeys: 1, lua: CHARGE })
  const rate = init.bytesPerMinute / 60_000
  return {
    async charge(worker, bytes, now) {
      const wait = await redis.cohortEgressCharge(
        `${init.prefix}egress:${worker}`,
        init.bytesPerMinute,
        rate,
        bytes,
        now,
      )
      return wait === 0 ? { ok: true } : { ok: false, retryAfterMs: Number(wait) }
    },
  }
}
