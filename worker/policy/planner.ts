// How many units the daemon may hold: no more than its work buffer (minutes of compute per thread), and
// never more than it can finish, at its measured speed, before the lease deadlines.
import type { HeldView } from './guest-hooks.js'

export interface PlanInput {
  now: number
  threads: number
  held: readonly HeldView[]
  /** Measured compute seconds of one unit of `kind` (undefined until one finished). */
  unitSeconds(kind: string): number | undefined
  /** Progress in [0, 1] of a running unit. */
  progress(replicaId: string): number
  /** Percent of wall time threads compute. */
  dutyCycle: number
  bufferMinutes: number
  /** Lease length of the latest units granted, ms. */
  leaseMs: number | undefined
}

/** Share of the lease a unit may plan to use; the rest absorbs noise in the measured speed. */
export const DEADLINE_SHARE = 0.8

export function admitUnits(p: PlanInput): number {
  const toCompute = p.held.filter((h) => h.state !== 'submitting').length
  const idleThreads = Math.max(0, p.threads - toCompute)
  const known = p.held.map((h) => p.unitSeconds(h.kind)).filter((s): s is number => s !== undefined)
  const anyKind = p.unitSeconds('*')
  const perUnit = known.length > 0 ? Math.max(...known) : anyKind
  // Until a unit has been measured: one running and one buffered unit per thread.
  if (perUnit === undefined || perUnit <= 0) return Math.max(0, 2 * p.threads - toCompute)
  const slow = 100 / Math.max(1, p.dutyCycle)
  const wall = perUnit * slow
  let queued = 0
  for (const h of p.held) {
    const s = (p.unitSeconds(h.kind) ?? perUnit) * slow
    if (h.state === 'running') queued += s * (1 - Math.min(1, Math.max(0, p.progress(h.replicaId))))
    else if (h.state === 'buffered') queued += s
  }
  const byBuffer = Math.floor((p.bufferMinutes * 60 * p.threads - queued) / wall)
  let byDeadline = Number.POSITIVE_INFINITY
  if (p.leaseMs !== undefined) {
    // The k-th new unit finishes after the queued work and k units, spread over the threads.
    byDeadline = Math.floor((((DEADLINE_SHARE * p.leaseMs) / 1000) * p.threads - queued) / wall)
    // A held unit that would already miss its own deadline: ask for nothing more.
    const soonest = Math.min(...p.held.filter((h) => h.state !== 'submitting').map((h) => h.expiresAt))
    if (Number.isFinite(soonest) && p.now + (queued / p.threads) * 1000 > soonest) byDeadline = 0
  }
  return Math.max(idleThreads, Math.min(byBuffer, byDeadline), 0)
}
