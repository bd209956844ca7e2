// How many `work.available` wake-ups to send. Each goes to one volunteer of the queue group, which
// then asks for as many units as it has room for; a wake-up that finds a volunteer with no room, or
// replicas already taken, is lost. No `node:` imports.

/**
 * Wake-ups for `replicas` ready replicas when a grant carries `perGrant` units on average: waking one
 * volunteer per replica would wake mostly volunteers that find nothing left.
 */
export function wakesFor(replicas: number, perGrant: number, max: number): number {
  if (!(replicas > 0)) return 0
  return Math.min(max, Math.ceil(replicas / Math.max(1, perGrant)))
}

export interface RewakePolicy {
  /** Wake-ups to send now, `ready` replicas waiting a tick after the last call. */
  next(ready: number, perGrant: number, max: number): number
}

/** Every how many ticks replicas that nobody takes get one wake-up, once their budget has run out. */
export const STUCK_EVERY_TICKS = 8

/**
 * Replicas still ready a tick later (their wake-ups were lost, or were fewer than the replicas) are
 * woken for again: as many as `wakesFor` says while the count of ready replicas falls, and half as
 * many each tick while it does not. Replicas that no online volunteer may take (a job kind none runs,
 * replicas held back for volunteers with standing) then cost one wake-up every `STUCK_EVERY_TICKS`
 * ticks, not `max` every tick.
 */
export function rewakePolicy(): RewakePolicy {
  let budget = Number.POSITIVE_INFINITY
  let lastReady = 0
  let staleTicks = 0
  return {
    next(ready, perGrant, max) {
      const n = Math.min(budget, wakesFor(ready, perGrant, max))
      if (ready > 0 && ready >= lastReady) {
        staleTicks++
        budget = Math.floor(n / 2)
        if (staleTicks % STUCK_EVERY_TICKS === 0) budget = Math.max(1, budget)
      } else {
        staleTicks = 0
        budget = Number.POSITIVE_INFINITY
      }
      lastReady = ready
      return n
    },
  }
}
