// What anyone may read about volunteers: an identity's public record (GET /v1/volunteers/:id) and the
// leaderboards (GET /v1/leaderboard). The coordinator writes these shapes; the /stats page, the
// contribute page and the worker daemon read them. Nothing private: no owner link, network, claimed
// compute times or reasons of a catch.
import { ValidationError } from './errors.js'
import { expectRecord } from './schema.js'

/** Where an identity was seen running. */
export type VolunteerRuntime = 'daemon' | 'browser' | 'unknown'

export interface VolunteerRecord {
  v: 1
  id: string
  /** Display name and team, when the identity claimed them. */
  name?: string
  team?: string
  /** Credit: the job types' estimated compute time of every unit its results helped validate, ms. */
  creditMs: number
  /** Its results that agreed with an accepted one (units it helped validate). */
  unitsValidated: number
  /** Results it returned, and those that disagreed with the accepted one. */
  results: number
  invalid: number
  /** Runtimes it asked for work from, and when it last did from each (ms since the epoch). */
  runtimes: Partial<Record<VolunteerRuntime, number>>
  /** First and last work request seen (absent when it never asked). */
  firstSeen?: number
  lastSeen?: number
  /** Whether it was caught returning wrong results: then it is off the leaderboard. */
  caught: boolean
  /** Its place on the leaderboard (1 = first), absent with no credit or when caught. */
  rank?: number
}

export interface LeaderboardVolunteer {
  rank: number
  id: string
  name?: string
  team?: string
  creditMs: number
  unitsValidated: number
}

export interface LeaderboardTeam {
  rank: number
  team: string
  creditMs: number
  /** Identities that claimed the team and were not caught. */
  members: number
}

export interface Leaderboard<T> {
  v: 1
  by: 'volunteer' | 'team'
  /** Entries with credit, overall. */
  total: number
  offset: number
  entries: T[]
}

/** Most entries one leaderboard page holds. */
export const MAX_LEADERBOARD_PAGE = 100

const num = (r: Record<string, unknown>, field: string): number => {
  const v = r[field]
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ValidationError(field, 'must be a number')
  return v
}

/** Checks a VolunteerRecord from a coordinator (the daemon and the contribute page read it). */
export function parseVolunteerRecord(value: unknown): VolunteerRecord {
  const r = expectRecord(value, 'volunteer record')
  if (r['v'] !== 1) throw new ValidationError('v', 'must be 1')
  const id = r['id']
  if (typeof id !== 'string') throw new ValidationError('id', 'must be a string')
  const text = (f: string): string | undefined => {
    const v = r[f]
    if (v === undefined) return undefined
    if (typeof v !== 'string') throw new ValidationError(f, 'must be a string')
    return v
  }
  const name = text('name')
  const team = text('team')
  const runtimes = expectRecord(r['runtimes'] ?? {}, 'runtimes') as Partial<Record<VolunteerRuntime, number>>
  return {
    v: 1,
    id,
    ...(name === undefined ? {} : { name }),
    ...(team === undefined ? {} : { team }),
    creditMs: num(r, 'creditMs'),
    unitsValidated: num(r, 'unitsValidated'),
    results: num(r, 'results'),
    invalid: num(r, 'invalid'),
    runtimes,
    ...(r['firstSeen'] === undefined ? {} : { firstSeen: num(r, 'firstSeen') }),
    ...(r['lastSeen'] === undefined ? {} : { lastSeen: num(r, 'lastSeen') }),
    caught: r['caught'] === true,
    ...(r['rank'] === undefined ? {} : { rank: num(r, 'rank') }),
  }
}

/** Credit for people: `1234567` ms → `20.6 min`. */
export function formatCredit(ms: number): string {
  const s = ms / 1000
  if (s < 120) return `${s.toFixed(1)} s`
  if (s < 7200) return `${(s / 60).toFixed(1)} min`
  return `${(s / 3600).toFixed(1)} h`
}
