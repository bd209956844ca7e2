// Volunteers' public standing in Redis: an identity's record (from `worker:{id}`, which DECIDE, the
// activity writer and claims keep), the leaderboards (`lb:credit`, `lb:team`, kept by the Lua of
// leaderboard-scripts.ts), and claims of a name and team.
import type { Redis } from 'ioredis'
import { definePrefixed } from './define-script.js'
import type {
  Leaderboard,
  LeaderboardTeam,
  LeaderboardVolunteer,
  VolunteerRecord,
  VolunteerRuntime,
} from '../../shared/index.js'
import { CLAIM } from './leaderboard-scripts.js'

/** The runtimes an identity's record lists (fields `seen:<runtime>` of `worker:{id}`). */
const RUNTIMES: readonly VolunteerRuntime[] = ['daemon', 'browser', 'unknown']

export type ClaimOutcome = 'ok' | 'replayed' | 'stale'

export interface VolunteerStore {
  /** The public record of `id`, or undefined when the cluster never heard of it. */
  record(id: string): Promise<VolunteerRecord | undefined>
  /** Identities by credit, best first: `count` entries from place `offset` (0-based). */
  volunteers(offset: number, count: number): Promise<Leaderboard<LeaderboardVolunteer>>
  /** Teams by credit, best first. */
  teams(offset: number, count: number): Promise<Leaderboard<LeaderboardTeam>>
  /** Applies a checked claim; `nonceTtlMs` is how long its nonce is remembered. */
  claim(
    c: { id: string; name: string; team?: string; at: number; nonce: string },
    nonceTtlMs: number,
  ): Promise<ClaimOutcome>
}

interface ClaimRedis {
  cohortClaim(...args: (string | number)[]): Promise<string>
}

const num = (v: string | null | undefined): number => (v === null || v === undefined ? 0 : Number(v))

export function createVolunteerStore(init: { redis: Redis; prefix: string }): VolunteerStore {
  const p = init.prefix
  const command: string = 'cohortClaim'
  definePrefixed(init.redis, command, CLAIM)
  const redis = init.redis as Redis & ClaimRedis

  /** Names and teams of identities, and their valid counts. */
  const about = async (ids: string[]): Promise<{ name?: string; team?: string; valid: number }[]> => {
    const pipe = redis.pipeline()
    for (const id of ids) pipe.hmget(`${p}worker:${id}`, 'name', 'team', 'valid')
    const rows = (await pipe.exec()) ?? []
    return rows.map(([err, row]) => {
      if (err !== null) throw err
      const [name, team, valid] = row as (string | null)[]
      return {
        ...(name === null || name === undefined ? {} : { name }),
        ...(team === null || team === undefined ? {} : { team }),
        valid: num(valid),
      }
    })
  }

  /** A page of a board: members with score above 0 (volunteers) or any (teams), best first. */
  const page = async (
    key: string,
    min: string,
    offset: number,
    count: number,
  ): Promise<{ total: number; rows: [string, number][] }> => {
    const [total, flat] = await Promise.all([
      redis.zcount(key, min, '+inf'),
      redis.zrevrangebyscore(key, '+inf', min, 'WITHSCORES', 'LIMIT', offset, count),
    ])
    const rows: [string, number][] = []
    for (let i = 0; i + 1 < flat.length; i += 2) rows.push([flat[i] as string, Number(flat[i + 1])])
    return { total, rows }
  }

  return {
    async record(id) {
      const h = await redis.hgetall(`${p}worker:${id}`)
      if (Object.keys(h).length === 0) return undefined
      const caught = h['caught'] !== undefined
      const rank = caught ? null : await redis.zrevrank(`${p}lb:credit`, id)
      const creditMs = num(h['creditMs'])
      const runtimes: Partial<Record<VolunteerRuntime, number>> = {}
      for (const rt of RUNTIMES) if (h[`seen:${rt}`] !== undefined) runtimes[rt] = num(h[`seen:${rt}`])
      return {
        v: 1,
        id,
        ...(h['name'] === undefined ? {} : { name: h['name'] }),
        ...(h['team'] === undefined ? {} : { team: h['team'] }),
        creditMs,
        unitsValidated: num(h['valid']),
        results: num(h['results']),
        invalid: num(h['invalid']),
        runtimes,
        ...(h['firstSeen'] === undefined ? {} : { firstSeen: num(h['firstSeen']) }),
        ...(h['lastSeen'] === undefined ? {} : { lastSeen: num(h['lastSeen']) }),
        caught,
        ...(rank === null || creditMs <= 0 ? {} : { rank: rank + 1 }),
      }
    },

    async volunteers(offset, count) {
      const { total, rows } = await page(`${p}lb:credit`, '(0', offset, count)
      const info = await about(rows.map(([id]) => id))
      return {
        v: 1,
        by: 'volunteer',
        total,
        offset,
        entries: rows.map(([id, creditMs], i) => {
          const { valid, ...named } = info[i] ?? { valid: 0 }
          return { rank: offset + i + 1, id, ...named, creditMs, unitsValidated: valid }
        }),
      }
    },

    async teams(offset, count) {
      const { total, rows } = await page(`${p}lb:team`, '-inf', offset, count)
      const sizes = rows.length === 0 ? [] : await redis.hmget(`${p}lb:teamSize`, ...rows.map(([t]) => t))
      return {
        v: 1,
        by: 'team',
        total,
        offset,
        entries: rows.map(([team, creditMs], i) => ({
          rank: offset + i + 1,
          team,
          creditMs,
          members: num(sizes[i]),
        })),
      }
    },

    async claim(c, nonceTtlMs) {
      const out = await redis.cohortClaim(p, c.id, c.name, c.team ?? '', c.at, c.nonce, nonceTtlMs)
      if (out !== 'ok' && out !== 'replayed' && out !== 'stale') throw new Error(`claim script said ${out}`)
      return out
    },
  }
}
