// Keeps the leases of held units alive: renews them at a third of the shortest lease, drops (and
// aborts) the units whose leases the coordinator says are lost, and after each renewal names the
// buffered units that will not start before their leases end at the measured pace, so they can go to
// a peer with room. No `node:` imports.
import { errorFields, type Logger } from '../../shared/index.js'
import type { CoordinatorClient } from '../coordinator-client.js'
import type { Held, HeldUnits } from './held-units.js'

/** Replica ids per renewal request at most. */
const MAX_RENEW = 256

/** The counts this part keeps in the daemon's stats. */
export interface LeaseStats {
  leasesLost: number
}

export interface LeaseKeeperInit {
  held: HeldUnits
  client: Pick<CoordinatorClient, 'renew'>
  stats: LeaseStats
  log: Logger
  /** The coordinator reported leases this worker no longer holds (the daemon's `lost` event). */
  onLost(replicaIds: string[]): void
  /** Buffered units that will start too late at the measured pace; called after a renewal. */
  onLate(late: Held[]): Promise<void>
  /** Mean wall time per unit; undefined before the first (then nothing is late). */
  perUnitMs(): number | undefined
  threads(): number
  /** False while the daemon is paused or stopping: nothing is judged late then. */
  judging(): boolean
}

export interface LeaseKeeper {
  /** Arms the renewal timer if units are held and none is armed. */
  schedule(): void
  /** Renews every held lease now (units being claimed from a peer are not ours at the coordinator yet). */
  renew(): Promise<void>
  /** Disarms the timer for good. */
  stop(): void
}

/**
 * Buffered units (in start order) that will not start before their lease ends, if each thread takes
 * `perUnitMs` per unit and `running` units are ahead of them.
 */
export function lateUnits(
  buffered: readonly Held[],
  p: { running: number; threads: number; perUnitMs: number; now: number },
): Held[] {
  const startsAt = (k: number): number =>
    p.now + Math.floor((k + p.running) / Math.max(1, p.threads)) * p.perUnitMs
  return buffered.filter((h, k) => startsAt(k) > h.expiresAt)
}

export function createLeaseKeeper(init: LeaseKeeperInit): LeaseKeeper {
  const { held, log } = init
  let timer: ReturnType<typeof setTimeout> | undefined
  let stopped = false

  const renew = async (): Promise<void> => {
    const ids = held
      .all()
      .filter((h) => h.state !== 'claiming')
      .map((h) => h.unit.replicaId)
      .slice(0, MAX_RENEW)
    if (ids.length === 0) return
    const reply = await init.client.renew(ids)
    for (const [rid, at] of Object.entries(reply.expiresAt)) {
      const h = held.get(rid)
      if (h !== undefined) h.expiresAt = at
    }
    if (reply.lost.length === 0) return
    init.stats.leasesLost += reply.lost.length
    // A result already on its way is answered by the coordinator either way.
    const gone = reply.lost
      .map((rid) => held.get(rid))
      .filter((h): h is Held => h !== undefined && h.state !== 'submitting')
    for (const h of gone) h.abort.abort()
    held.remove(gone)
    init.onLost(reply.lost)
  }

  const judge = async (): Promise<void> => {
    const perUnitMs = init.perUnitMs()
    if (perUnitMs === undefined || !init.judging()) return
    const late = lateUnits(held.inState('buffered'), {
      running: held.count('running'),
      threads: init.threads(),
      perUnitMs,
      now: Date.now(),
    })
    if (late.length > 0) await init.onLate(late)
  }

  function schedule(): void {
    if (timer !== undefined || stopped || held.size === 0) return
    const shortest = Math.min(...held.all().map((h) => h.leaseMs))
    timer = setTimeout(
      () => {
        timer = undefined
        renew()
          .then(judge)
          .catch((err: unknown) => log.debug('lease renewal failed', errorFields(err)))
          .finally(schedule)
      },
      Math.max(100, Math.floor(shortest / 3)),
    )
  }

  return {
    schedule,
    renew,
    stop() {
      stopped = true
      clearTimeout(timer)
      timer = undefined
    },
  }
}
