// Where the coordinator's Redis is, and how to connect to it: one Redis (`redis://`, `rediss://`,
// the default) or a Redis Cluster (`redis-cluster://host:port,host:port,...`; docs/redis-cluster.md).
// Every connection of the coordinator (the store, event streams, BullMQ) is made here, so all of them
// reach the same deployment the same way.
import { Cluster, Redis, type RedisOptions } from 'ioredis'
import { ConfigError } from '../shared/errors.js'

export type RedisTarget =
  | { cluster: false; url: string }
  | {
      cluster: true
      /** Seed nodes: the client learns the rest of the cluster from any of them. */
      nodes: { host: string; port: number }[]
      username?: string
      password?: string
      tls: boolean
    }

const CLUSTER_SCHEMES = new Set(['redis-cluster:', 'rediss-cluster:'])
/** Bounds the seed list of a cluster URL (a cluster needs one live seed; a handful is plenty). */
const MAX_SEEDS = 64

/** Parses `url` (REDIS_URL / `redisUrl`): a cluster for `redis-cluster://` and `rediss-cluster://`. */
export function parseRedisTarget(url: string): RedisTarget {
  const scheme = /^([a-z-]+:)\/\//.exec(url)?.[1]
  if (scheme === undefined || !CLUSTER_SCHEMES.has(scheme)) return { cluster: false, url }
  const rest = url.slice(scheme.length + 2).replace(/\/$/, '')
  const at = rest.lastIndexOf('@')
  const auth = at < 0 ? '' : rest.slice(0, at)
  const list = at < 0 ? rest : rest.slice(at + 1)
  const seeds = list.split(',')
  if (list === '' || seeds.length > MAX_SEEDS)
    throw new ConfigError(
      `redisUrl: a Redis Cluster URL lists 1..${MAX_SEEDS} seed nodes as host:port,host:port`,
    )
  const nodes = seeds.map((s) => {
    const m = /^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$/.exec(s)
    const port = Number(m?.[2])
    if (m === null || !(port >= 1 && port <= 65535))
      throw new ConfigError(`redisUrl: "${s}" is not a host:port seed node of a Redis Cluster URL`)
    return { host: (m[1] as string).replace(/^\[|\]$/g, ''), port }
  })
  const colon = auth.indexOf(':')
  const username = decodeURIComponent(colon < 0 ? '' : auth.slice(0, colon))
  const password = decodeURIComponent(colon < 0 ? auth : auth.slice(colon + 1))
  return {
    cluster: true,
    nodes,
    ...(username === '' ? {} : { username }),
    ...(password === '' ? {} : { password }),
    tls: scheme === 'rediss-cluster:',
  }
}

/**
 * The hash tag of a key prefix by Redis Cluster's rule (the text between the first `{` and the first
 * `}` after it, when not empty), or undefined: every key beginning with a tagged prefix hashes to the
 * tag's slot.
 */
export function hashTagOf(prefix: string): string | undefined {
  const open = prefix.indexOf('{')
  if (open < 0) return undefined
  const close = prefix.indexOf('}', open + 1)
  return close > open + 1 ? prefix.slice(open + 1, close) : undefined
}

/** Refuses a cluster whose key prefix has no hash tag: its keys would be spread over every slot. */
export function checkPrefixFor(target: RedisTarget, prefix: string): void {
  if (target.cluster && hashTagOf(prefix) === undefined)
    throw new ConfigError(
      `redisPrefix "${prefix}" has no hash tag: on a Redis Cluster (redisUrl redis-cluster://...) ` +
        'the prefix must hold one, e.g. "{cohort}:", so that all of the deployment\'s keys share one slot',
    )
}

/**
 * A connection to `target`. On a cluster it is an ioredis `Cluster`, which has the commands,
 * pipelines, transactions and scripts of a single connection (routed by the slot of their keys) and
 * is used as one: typed `Redis` so that every store takes either.
 */
export function connectRedis(target: RedisTarget, options: RedisOptions): Redis {
  if (!target.cluster) return new Redis(target.url, options)
  const { lazyConnect, enableAutoPipelining, ...perNode } = options
  const cluster = new Cluster(target.nodes, {
    ...(lazyConnect === undefined ? {} : { lazyConnect }),
    ...(enableAutoPipelining === undefined ? {} : { enableAutoPipelining }),
    // A failover takes a few node timeouts: commands wait for the new primary meanwhile.
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 200,
    retryDelayOnTryAgain: 200,
    redisOptions: {
      ...perNode,
      ...(target.username === undefined ? {} : { username: target.username }),
      ...(target.password === undefined ? {} : { password: target.password }),
      ...(target.tls ? { tls: {} } : {}),
    },
  })
  return cluster as unknown as Redis
}

/** A new connection to the same Redis or cluster as `redis`, with `options` over its own. */
export function duplicateRedis(redis: Redis, options: RedisOptions): Redis {
  if (!(redis instanceof Cluster)) return redis.duplicate(options)
  const cluster = redis as Cluster
  const { lazyConnect, enableAutoPipelining, ...perNode } = options
  return cluster.duplicate(undefined, {
    ...cluster.options,
    ...(lazyConnect === undefined ? {} : { lazyConnect }),
    ...(enableAutoPipelining === undefined ? {} : { enableAutoPipelining }),
    redisOptions: { ...cluster.options.redisOptions, ...perNode },
  }) as unknown as Redis
}
