// What the coordinator records, read while an integrity scenario runs: each unit's state and
// canonical digest (`unit:{id}` in Redis: `state`, `digest`, `validatedAt`), each identity's record
// (`worker:{id}`: `invalid` counts results that disagreed with a validated majority; a `credibility`
// field or a `caught…` field, where the coordinator keeps them), and the queues of ready and leased
// replicas. Polled, so times have the poll's resolution.
//
// - A unit is *redone* when, after it was seen validated, it is seen pending again or validated anew
//   (another `validatedAt`): backtracking discarded its results.
// - An identity is *marked invalid* when its `invalid` count is first seen above 0 (a record only: on
//   its own it changes nothing), and *caught* when its record first says the coordinator stopped
//   trusting it: a field whose name contains `caught`, `banned` or `blacklist` with a value other than
//   empty or 0, or a `credibility` below the highest seen for it.
import type { Redis } from 'ioredis'

export interface UnitTrack {
  /** Digest first seen validated, and when (epoch ms of the poll). */
  firstDigest?: string
  firstAt?: number
  /** The last validation seen (`validatedAt`), to tell a new one apart. */
  lastValidatedAt?: string
  /** State and digest at the last poll. */
  state: string
  digest: string
  /** Times the unit was seen redone; of those, times its validated output had been the true one. */
  redone: number
  redoneRight: number
}

export interface IdentityTrack {
  id: string
  invalidAt?: number
  caughtAt?: number
  /** Highest credibility seen, when the record has one. */
  credibility?: number
}

export interface Watcher {
  units: Map<string, UnitTrack>
  identities: Map<string, IdentityTrack>
  /** Reads everything once. */
  poll(): Promise<void>
  /** Replicas waiting for a worker plus leases held, over all jobs. */
  queued(): Promise<number>
}

const CAUGHT_FIELD = /caught|banned|blacklist/i

function isCaught(h: Record<string, string>, t: IdentityTrack): boolean {
  for (const [k, v] of Object.entries(h)) if (CAUGHT_FIELD.test(k) && v !== '' && v !== '0') return true
  const raw = h['credibility']
  if (raw === undefined) return false
  const c = Number(raw)
  if (!Number.isFinite(c)) return false
  const dropped = t.credibility !== undefined && c < t.credibility
  t.credibility = Math.max(c, t.credibility ?? c)
  return dropped
}

export function createWatcher(init: {
  redis: Redis
  prefix: string
  /** Each unit's true output digest. */
  truth: ReadonlyMap<string, string>
  identityIds: readonly string[]
}): Watcher {
  const unitIds = [...init.truth.keys()]
  const { redis, prefix: p } = init
  const units = new Map<string, UnitTrack>(
    unitIds.map((u) => [u, { state: '', digest: '', redone: 0, redoneRight: 0 }]),
  )
  const identities = new Map<string, IdentityTrack>(init.identityIds.map((id) => [id, { id }]))
  return {
    units,
    identities,
    async poll() {
      const at = Date.now()
      const pipe = redis.pipeline()
      for (const uid of unitIds) pipe.hmget(`${p}unit:${uid}`, 'state', 'digest', 'validatedAt')
      for (const id of init.identityIds) pipe.hgetall(`${p}worker:${id}`)
      const res = (await pipe.exec()) ?? []
      unitIds.forEach((uid, i) => {
        const [err, v] = res[i] ?? [null, null]
        if (err) throw err
        const [state = '', digest = '', validatedAt = ''] = ((v as (string | null)[] | null) ?? []).map(
          (x) => x ?? '',
        )
        const t = units.get(uid)!
        const wasValidated = t.firstDigest !== undefined
        const left = t.state === 'validated' && state !== 'validated'
        const anew =
          state === 'validated' && t.lastValidatedAt !== undefined && validatedAt !== t.lastValidatedAt
        if (wasValidated && (left || anew)) {
          t.redone++
          if (t.digest === init.truth.get(uid)) t.redoneRight++
        }
        if (state === 'validated') {
          if (t.firstDigest === undefined) {
            t.firstDigest = digest
            t.firstAt = at
          }
          t.lastValidatedAt = validatedAt
        }
        t.state = state
        t.digest = digest
      })
      init.identityIds.forEach((id, j) => {
        const [err, v] = res[unitIds.length + j] ?? [null, null]
        if (err) throw err
        const h = (v as Record<string, string> | null) ?? {}
        const t = identities.get(id)!
        if (t.invalidAt === undefined && Number(h['invalid'] ?? 0) > 0) t.invalidAt = at
        if (isCaught(h, t) && t.caughtAt === undefined) t.caughtAt = at
      })
    },
    async queued() {
      const [ready, leases] = await Promise.all([redis.zcard(`${p}ready`), redis.zcard(`${p}leases`)])
      return ready + leases
    },
  }
}
