// The units a worker holds a lease on, and the states each goes through while here: buffered (to run),
// running, submitting (its result on the way), leaving (being handed to a peer) and claiming (being
// taken over from a peer, never run in that state). Every change refreshes the `held` and `running`
// counts; the held replica ids are reported once per turn of the event loop, however many changes it
// made. A worker may hold hundreds of tiny units: counts and the units of a state cost O(1) per unit
// asked for, never a pass over all of them. No `node:` imports.
import { CohortError, type SignedEnvelope, type UnitPayload } from '../../shared/index.js'

export type HeldState = 'buffered' | 'running' | 'submitting' | 'leaving' | 'claiming'

export interface Held {
  readonly unit: UnitPayload
  /** The coordinator's envelope, passed on when the unit is handed to a peer. */
  readonly envelope?: SignedEnvelope
  readonly state: HeldState
  /** Aborted when the unit must stop running (its lease is lost, the worker stops). */
  readonly abort: AbortController
  /** The lease's deadline as the coordinator last said. */
  expiresAt: number
  /** The lease's length when it was granted. */
  readonly leaseMs: number
}

/** The counts this part keeps in the daemon's stats. */
export interface HeldStats {
  held: number
  running: number
}

/** The moves a held unit may make; anything else is a bug in the caller. */
const MOVES: Readonly<Record<HeldState, readonly HeldState[]>> = {
  buffered: ['running', 'leaving'],
  running: ['submitting'],
  submitting: [],
  leaving: ['buffered'],
  claiming: [],
}

/** A state change the table above does not allow. */
export class HeldStateError extends CohortError {
  override name = 'HeldStateError'
}

export interface HeldUnitsInit {
  stats: HeldStats
  /** The held replica ids, after every change (the daemon's `held` event). */
  onChange(replicaIds: string[]): void
}

export interface NewHeld {
  unit: UnitPayload
  envelope?: SignedEnvelope
  /** The lease's deadline (the unit's own, or a later one from a renewal). */
  expiresAt: number
}

export interface HeldUnits {
  readonly size: number
  get(replicaId: string): Held | undefined
  /** Every held unit, oldest first. */
  all(): Held[]
  ids(): string[]
  count(state: HeldState): number
  /** The units in `state`, those that entered it first first. */
  inState(state: HeldState): Held[]
  /** The first `n` units in `state` (as `inState`), without listing the rest. */
  firstIn(state: HeldState, n: number): Held[]
  /**
   * Adds verified units as buffered and returns those added. A replica already held is skipped, unless
   * it is only reserved (`claiming`) and `claimed` is set: the peer's handoff then completes.
   */
  add(units: readonly NewHeld[], claimed?: boolean): Held[]
  /** Reserves units a peer is handing over (`claiming`); returns the undo for those not added since. */
  reserve(units: readonly UnitPayload[]): () => void
  /** Moves the units still held and in `from` to `to`; returns those moved. */
  move(units: Held | readonly Held[], from: HeldState, to: HeldState): Held[]
  /** Drops the units still held (in any state); returns those dropped. */
  remove(units: Held | readonly Held[]): Held[]
}

export function createHeldUnits(init: HeldUnitsInit): HeldUnits {
  type Entry = Held & { state: HeldState }
  const held = new Map<string, Entry>()
  const byState: Record<HeldState, Set<Entry>> = {
    buffered: new Set(),
    running: new Set(),
    submitting: new Set(),
    leaving: new Set(),
    claiming: new Set(),
  }
  const count = (state: HeldState): number => byState[state].size
  const put = (h: Entry): void => {
    const prior = held.get(h.unit.replicaId)
    if (prior !== undefined) byState[prior.state].delete(prior)
    held.set(h.unit.replicaId, h)
    byState[h.state].add(h)
  }
  const drop = (h: Entry): void => {
    held.delete(h.unit.replicaId)
    byState[h.state].delete(h)
  }
  let reportDue = false
  const changed = (): void => {
    init.stats.held = held.size
    init.stats.running = count('running')
    if (reportDue) return
    reportDue = true
    queueMicrotask(() => {
      reportDue = false
      init.onChange([...held.keys()])
    })
  }
  const list = (units: Held | readonly Held[]): readonly Held[] => ('unit' in units ? [units] : units)
  const mine = (h: Held): (Held & { state: HeldState }) | undefined => {
    const own = held.get(h.unit.replicaId)
    return own === h ? own : undefined
  }
  const make = (n: NewHeld, state: HeldState): Held & { state: HeldState } => ({
    unit: n.unit,
    ...(n.envelope === undefined ? {} : { envelope: n.envelope }),
    state,
    abort: new AbortController(),
    expiresAt: n.expiresAt,
    leaseMs: Math.max(1, n.unit.expiresAt - n.unit.issuedAt),
  })

  return {
    get size() {
      return held.size
    },
    get: (replicaId) => held.get(replicaId),
    all: () => [...held.values()],
    ids: () => [...held.keys()],
    count,
    inState: (state) => [...byState[state]],
    firstIn(state, n) {
      const out: Held[] = []
      if (n <= 0) return out
      for (const h of byState[state]) {
        out.push(h)
        if (out.length >= n) break
      }
      return out
    },
    add(units, claimed = false) {
      const added: Held[] = []
      for (const n of units) {
        const prior = held.get(n.unit.replicaId)
        if (prior !== undefined && !(claimed && prior.state === 'claiming')) continue
        const h = make(n, 'buffered')
        put(h)
        added.push(h)
      }
      if (added.length > 0) changed()
      return added
    },
    reserve(units) {
      const reserved = units
        .filter((u) => !held.has(u.replicaId))
        .map((u) => make({ unit: u, expiresAt: u.expiresAt }, 'claiming'))
      for (const h of reserved) put(h)
      return () => {
        for (const h of reserved) if (held.get(h.unit.replicaId) === h) drop(h)
      }
    },
    move(units, from, to) {
      if (!MOVES[from].includes(to)) throw new HeldStateError(`a held unit cannot go from ${from} to ${to}`)
      const moved: Held[] = []
      for (const u of list(units)) {
        const h = mine(u)
        if (h?.state !== from) continue
        byState[from].delete(h)
        h.state = to
        byState[to].add(h)
        moved.push(h)
      }
      if (moved.length > 0) changed()
      return moved
    },
    remove(units) {
      const removed: Held[] = []
      for (const u of list(units)) {
        const h = mine(u)
        if (h === undefined) continue
        drop(h)
        removed.push(h)
      }
      if (removed.length > 0) changed()
      return removed
    },
  }
}
