// What the cluster is doing now, shared by every coordinator through Redis: which identities asked
// for work in the last minute, by runtime (daemon, browser, or unknown for workers that do not say),
// and how many units were validated in each 10-second bucket of the last minutes. Events are counted
// in memory and written once a second in one pipeline, so the hot paths make no extra round trip.
import type { Redis } from 'ioredis'
import {
  errorFields,
  type Logger,
  type OnlineWorker,
  type RuntimeLabel,
  type Throughput,
  type WorkerRuntime,
} from '../../shared/index.js'
import { every, type Periodic } from '../periodic.js'

export const RUNTIMES: readonly RuntimeLabel[] = ['daemon', 'browser', 'unknown']

/** An identity that asked for work this recently is online. */
export const ONLINE_MS = 60_000
/** Width of a throughput bucket. */
export const BUCKET_MS = 10_000
/** Buckets kept: ten minutes. */
export const BUCKETS = 60
/**
 * An identity seen again this soon after its record was written, in the same runtime, is not
 * written again: a crowd asking every second would otherwise cost five Redis commands per identity
 * per second. `lastSeen` is at most this stale.
 */
export const REWRITE_MS = 10_000
/** Identities whose last write this coordinator remembers, at most. */
const WRITTEN_MAX = 100_000
/** Online workers listed at most (the most recently seen). */
export const MAX_LISTED = 200

export interface ActivityInit {
  redis: Redis
  prefix: string
  log: Logger
  /** How often counts are written. Default 1000 ms. */
  flushMs?: number
}

export interface Activity {
  start(): void
  /** Writes what is counted, then stops. */
  stop(): Promise<void>
  /** A work request from `worker`. */
  seen(worker: string, runtime: WorkerRuntime | undefined): void
  /** `n` units validated now. */
  validated(n: number): void
  /** Write what is counted now (also on a timer). */
  flush(): Promise<void>
  /** Identities online, by runtime. */
  online(now: number): Promise<Record<RuntimeLabel, number>>
  /** The most recently seen online identities, with their standing. */
  onlineWorkers(now: number): Promise<OnlineWorker[]>
  /** Units validated per bucket, oldest first, the last bucket being the one under way. */
  throughput(now: number): Promise<Throughput>
}

export function createActivity(init: ActivityInit): Activity {
  const { redis, prefix: p, log } = init
  const seenKey = (rt: RuntimeLabel): string => `${p}seen:${rt}`
  const bucketKey = (b: number): string => `${p}throughput:${b}`
  let seen = new Map<string, { runtime: RuntimeLabel; at: number }>()
  let validated = new Map<number, number>()
  /** What this coordinator last wrote for an identity: its runtime and when. */
  const written = new Map<string, { runtime: RuntimeLabel; at: number }>()
  let timer: Periodic | undefined

  const flush = async (): Promise<void> => {
    if (seen.size === 0 && validated.size === 0) return
    const s = seen
    const v = validated
    seen = new Map()
    validated = new Map()
    const now = Date.now()
    if (written.size > WRITTEN_MAX) written.clear()
    for (const [worker, w] of written) if (w.at <= now - REWRITE_MS) written.delete(worker)
    const pipe = redis.pipeline()
    for (const [worker, { runtime, at }] of s) {
      const before = written.get(worker)
      if (before?.runtime === runtime) continue
      written.set(worker, { runtime, at })
      pipe.zadd(seenKey(runtime), at, worker)
      // The identity's public record (GET /v1/volunteers/:id): first and last seen, by runtime.
      const wk = `${p}worker:${worker}`
      pipe.hsetnx(wk, 'firstSeen', at).hset(wk, 'lastSeen', at, `seen:${runtime}`, at)
      // One identity is in one runtime's set: the last it said.
      for (const other of RUNTIMES) if (other !== runtime) pipe.zrem(seenKey(other), worker)
    }
    for (const rt of RUNTIMES) pipe.zremrangebyscore(seenKey(rt), '-inf', now - ONLINE_MS)
    for (const [b, n] of v) pipe.incrby(bucketKey(b), n).pexpire(bucketKey(b), (BUCKETS + 1) * BUCKET_MS)
    const out = (await pipe.exec()) ?? []
    for (const [err] of out) if (err !== null) throw err
  }

  return {
    start() {
      timer = every(init.flushMs ?? 1_000, flush, (err) => log.warn('activity not written', errorFields(err)))
    },
    async stop() {
      await timer?.stop()
      timer = undefined
      await flush().catch((err: unknown) => log.warn('activity not written', errorFields(err)))
    },
    seen(worker, runtime) {
      seen.set(worker, { runtime: runtime ?? 'unknown', at: Date.now() })
    },
    validated(n) {
      const b = Math.floor(Date.now() / BUCKET_MS)
      validated.set(b, (validated.get(b) ?? 0) + n)
    },
    flush,
    async online(now) {
      const pipe = redis.pipeline()
      for (const rt of RUNTIMES) pipe.zcount(seenKey(rt), now - ONLINE_MS, '+inf')
      const out = (await pipe.exec()) ?? []
      const counts = out.map(([err, n]) => {
        if (err !== null) throw err
        return Number(n)
      })
      return { daemon: counts[0] ?? 0, browser: counts[1] ?? 0, unknown: counts[2] ?? 0 }
    },
    async onlineWorkers(now) {
      const lists = await Promise.all(
        RUNTIMES.map(async (runtime) => {
          const flat = await redis.zrevrangebyscore(
            seenKey(runtime),
            '+inf',
            now - ONLINE_MS,
            'WITHSCORES',
            'LIMIT',
            0,
            MAX_LISTED,
          )
          const rows: { id: string; runtime: RuntimeLabel; lastSeen: number }[] = []
          for (let i = 0; i + 1 < flat.length; i += 2)
            rows.push({ id: flat[i] as string, runtime, lastSeen: Number(flat[i + 1]) })
          return rows
        }),
      )
      const rows = lists
        .flat()
        .sort((a, b) => b.lastSeen - a.lastSeen)
        .slice(0, MAX_LISTED)
      const pipe = redis.pipeline()
      for (const r of rows) pipe.hmget(`${p}worker:${r.id}`, 'valid', 'creditMs')
      const standing = (await pipe.exec()) ?? []
      return rows.map((r, i) => {
        const [err, v] = standing[i] ?? [null, []]
        if (err !== null) throw err
        const [valid, creditMs] = v as (string | null)[]
        return { ...r, valid: Number(valid ?? 0), creditMs: Number(creditMs ?? 0) }
      })
    },
    async throughput(now) {
      const last = Math.floor(now / BUCKET_MS)
      const first = last - BUCKETS + 1
      const keys = Array.from({ length: BUCKETS }, (_, i) => bucketKey(first + i))
      const values = await redis.mget(...keys)
      return { bucketMs: BUCKET_MS, since: first * BUCKET_MS, units: values.map((x) => Number(x ?? 0)) }
    },
  }
}
