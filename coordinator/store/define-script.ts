// How the coordinator's Lua scripts are declared to Redis. Every script takes the deployment's key
// prefix first; it is sent as the script's one declared key (KEYS[1]), and every key the script
// touches is built from it. On a Redis Cluster the prefix carries a hash tag (`{cohort}:`), so the
// prefix and every key built from it hash to one slot: the client routes the script to the node
// serving that slot, and the script never reaches outside it (docs/redis-cluster.md). On a single
// Redis the declared key changes nothing.
import type { Redis } from 'ioredis'

/**
 * Prepended to every script: ARGV as the script body reads it, the declared key (the prefix) first,
 * then the arguments. A local copy, built by a loop (no `unpack`, whose stack bounds the argument
 * count); the global ARGV is left alone.
 */
const PROLOGUE = `local ARGV = (function(k, a)
  local out = { k }
  for i = 1, #a do out[i + 1] = a[i] end
  return out
end)(KEYS[1], ARGV)
`

/** A script whose first argument is the deployment's key prefix, declared as its key. */
export function prefixedScript(lua: string): { numberOfKeys: 1; lua: string } {
  return { numberOfKeys: 1, lua: PROLOGUE + lua }
}

/**
 * Defines `name` on `redis` (once per connection): called as `redis[name](prefix, ...args)`, the
 * prefix is KEYS[1] and the script reads it as ARGV[1], its arguments after it.
 */
export function definePrefixed(redis: Redis, name: string, lua: string): void {
  if (!(name in redis)) redis.defineCommand(name, prefixedScript(lua))
}
