// A fixed-window counter per key in Redis, shared by every coordinator of a deployment.
import type { Redis } from 'ioredis'

// KEYS[1] counter; ARGV[1] window ms. Returns the count in this window and the ms until it ends.
const HIT = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
`

export interface RateLimit {
  /** Counts one hit on `key`: allowed, or refused with the ms until the window ends. */
  hit(key: string): Promise<{ ok: true } | { ok: false; retryAfterMs: number }>
}

export function createRateLimit(redis: Redis, keyPrefix: string, limit: number, windowMs: number): RateLimit {
  return {
    async hit(key) {
      const [n, ttl] = (await redis.eval(HIT, 1, `${keyPrefix}${key}`, String(windowMs))) as [number, number]
      return n <= limit ? { ok: true } : { ok: false, retryAfterMs: Math.max(1, ttl) }
    },
  }
}

/**
 * The part of a client address a limit applies to: an IPv4 address, or the /64 network of an IPv6
 * address (one subscriber usually has a whole /64, so counting single IPv6 addresses limits nothing).
 */
export function addressKey(address: string): string {
  const v4 = /^(?:::ffff:)?(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address)
  if (v4 !== null) return v4[1] ?? address
  if (!address.includes(':')) return address
  const [head = '', tail = ''] = address.toLowerCase().split('::')
  const left = head === '' ? [] : head.split(':')
  const right = tail === '' ? [] : tail.split(':')
  const groups = address.includes('::')
    ? [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right]
    : left
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`
}
