// Units leaving this worker unrun: handed to peers with room (the coordinator moves the leases), taken
// by idle peers that steal, or handed back to the coordinators, so none waits here to expire. Used
// when the worker pauses or stops, and when it holds more than it can start before the leases end.
// No `node:` imports.
import { errorFields, type Logger, type SignedEnvelope } from '../../shared/index.js'
import type { CoordinatorClient } from '../coordinator-client.js'
import type { Exchange, Giveable } from '../peer/exchange.js'
import type { DaemonGuest } from '../policy/guest-hooks.js'
import type { Held, HeldUnits } from './held-units.js'

export interface ShedderInit {
  held: HeldUnits
  client: Pick<CoordinatorClient, 'release'>
  /** The peer exchange; undefined when peer exchange is off (units then only go back). */
  exchange?: Pick<Exchange, 'handoff'> | undefined
  /** Some peer announced room for units. */
  peersHaveRoom(): boolean
  guest?: Pick<DaemonGuest, 'onFinished'> | undefined
  log: Logger
  /** Units came back to the buffer (a handoff failed): start them. */
  onReturned(): void
  /** Units left to a peer: room for more work. */
  onLeft(): void
}

export interface Shedder {
  /** Hands units to peers with room; returns those no peer took (buffered again). */
  giveToPeers(units: readonly Held[]): Promise<Held[]>
  /** Units this worker will not start: to peers, the rest back to the coordinators. */
  shed(units: readonly Held[], reason: string): Promise<void>
  /** Releases the leases of these units at the coordinator (they are dropped here first). */
  handBack(units: readonly Held[], reason: string): Promise<void>
  /** Buffered units that would start too late go to peers with room; they stay when none has any. */
  overload(late: readonly Held[]): Promise<void>
  /** A stealing peer takes up to `want` buffered units of these kinds, newest first, none in `avoid`. */
  take(want: number, kinds: ReadonlySet<string>, avoid: ReadonlySet<string>): Giveable[]
  /** A handoff of these replicas failed: they are buffered here again. */
  restore(replicaIds: readonly string[]): void
  /** A handoff of these replicas completed: they are the peer's now. */
  forget(replicaIds: readonly string[]): void
}

type Giving = Held & { envelope: SignedEnvelope }

export function createShedder(init: ShedderInit): Shedder {
  const { held, log } = init
  const leaving = (ids: readonly string[]): Held[] =>
    ids.map((rid) => held.get(rid)).filter((h): h is Held => h?.state === 'leaving')

  const gone = (units: readonly Held[]): void => {
    for (const h of held.remove(units)) init.guest?.onFinished(h.unit, undefined)
  }

  const giveToPeers = async (units: readonly Held[]): Promise<Held[]> => {
    const giveable = units.filter((h): h is Giving => h.envelope !== undefined)
    if (init.exchange === undefined || giveable.length === 0) return [...units]
    const giving = held.move(giveable, 'buffered', 'leaving') as Giving[]
    const left = new Set(
      await init.exchange.handoff(giving.map((h) => ({ envelope: h.envelope, unit: h.unit }))),
    )
    held.move(
      giving.filter((h) => left.has(h.unit.replicaId)),
      'leaving',
      'buffered',
    )
    gone(giving.filter((h) => !left.has(h.unit.replicaId)))
    return units.filter((h) => held.get(h.unit.replicaId) === h)
  }

  const handBack = async (units: readonly Held[], reason: string): Promise<void> => {
    if (units.length === 0) return
    held.remove(units)
    try {
      const r = await init.client.release(
        units.map((h) => h.unit.replicaId),
        reason,
      )
      log.info('handed back leases', { n: r.released, reason })
    } catch (err) {
      log.warn('could not hand back leases; they will expire', errorFields(err))
    }
  }

  return {
    giveToPeers,
    handBack,
    async shed(units, reason) {
      if (units.length > 0) await handBack(await giveToPeers(units), reason)
    },
    async overload(late) {
      if (init.exchange === undefined || late.length === 0 || !init.peersHaveRoom()) return
      await giveToPeers(late)
      init.onReturned()
    },
    take(want, kinds, avoid) {
      const picked: Giving[] = []
      for (const h of held.inState('buffered').reverse()) {
        if (picked.length >= want) break
        if (h.envelope === undefined || !kinds.has(h.unit.kind) || avoid.has(h.unit.unitId)) continue
        picked.push(h as Giving)
      }
      return (held.move(picked, 'buffered', 'leaving') as Giving[]).map((h) => ({
        envelope: h.envelope,
        unit: h.unit,
      }))
    },
    restore(replicaIds) {
      held.move(leaving(replicaIds), 'leaving', 'buffered')
      init.onReturned()
    },
    forget(replicaIds) {
      gone(leaving(replicaIds))
      init.onLeft()
    },
  }
}
