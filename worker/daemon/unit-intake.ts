// Units coming in: from a coordinator's grant, from a peer's handoff, or from checkpoints of an
// earlier run. Each is verified (signature, addressee, expiry, job type, input) before it is held, and
// the content it reads starts downloading at once so it is there when the unit runs. Also answers
// the coordinator client's question "which held lease needs this data". No `node:` imports.
import {
  errorFields,
  type AnyJobType,
  type ContentRef,
  type Logger,
  type SignedEnvelope,
  type UnitPayload,
} from '../../shared/index.js'
import type { DataNeed } from '../coordinator-client.js'
import type { DaemonGuest } from '../policy/guest-hooks.js'
import type { RestoredUnit } from '../policy/restore.js'
import { verifyUnit, type TrustedKeys } from '../unit-verifier.js'
import type { HeldUnits } from './held-units.js'

/** The counts this part keeps in the daemon's stats. */
export interface IntakeStats {
  unitsRefused: number
}

export interface UnitIntakeInit {
  held: HeldUnits
  trusted: TrustedKeys
  /** This worker's id: units must be addressed to it. */
  self: string
  jobTypes: ReadonlyMap<string, AnyJobType>
  guest?: Pick<DaemonGuest, 'onAccepted'> | undefined
  /** Fetches (and keeps) a content a held unit reads; failures are logged, the run fetches again. */
  fetchContent(ref: ContentRef): Promise<unknown>
  stats: IntakeStats
  log: Logger
  /** A unit failed verification (the daemon's `refused` event). */
  onRefused(reason: string): void
  /** Units may have been added: start them and keep their leases. */
  onAdded(): void
  /** Clock for expiry checks. Default `Date.now`. */
  now?: () => number
}

export interface UnitIntake {
  /** Verifies and holds units; `fromPeer`: completes the handoffs reserved for them. */
  accept(envelopes: readonly SignedEnvelope[], fromPeer?: boolean): Promise<void>
  /** Holds units restored from checkpoints (already verified and renewed). */
  restored(units: readonly RestoredUnit[]): void
  /**
   * A replica held whose unit needs this module or content (coordinators serve data only for such a
   * lease): units not being handed away come first; one being claimed is not held yet.
   */
  leaseFor(need: DataNeed): string | undefined
}

export function createUnitIntake(init: UnitIntakeInit): UnitIntake {
  const { held, jobTypes, log } = init
  const now = init.now ?? Date.now

  /** Starts fetching the content a unit reads as soon as it is held, so it is there when it runs. */
  const prefetch = (unit: UnitPayload): void => {
    for (const ref of jobTypes.get(unit.kind)?.content?.(unit.input) ?? []) {
      init
        .fetchContent(ref)
        .catch((err: unknown) => log.warn('could not fetch content', { root: ref.root, ...errorFields(err) }))
    }
  }

  const needs = (unit: UnitPayload, need: DataNeed): boolean => {
    const jobType = jobTypes.get(unit.kind)
    try {
      return 'module' in need
        ? (jobType?.resources?.(unit.input) ?? []).includes(need.module)
        : (jobType?.content?.(unit.input) ?? []).some((ref) => ref.root === need.root)
    } catch {
      return false
    }
  }

  return {
    async accept(envelopes, fromPeer = false) {
      const verified: { unit: UnitPayload; envelope: SignedEnvelope; expiresAt: number }[] = []
      for (const envelope of envelopes) {
        try {
          const unit = await verifyUnit(envelope, {
            trusted: init.trusted,
            self: init.self,
            jobTypes,
            now: now(),
          })
          verified.push({ unit, envelope, expiresAt: unit.expiresAt })
        } catch (err) {
          init.stats.unitsRefused++
          const reason = `${(err as Error).name}: ${(err as Error).message}`
          log.warn('refused a unit', { reason })
          init.onRefused(reason)
        }
      }
      for (const h of held.add(verified, fromPeer)) {
        if (h.envelope !== undefined) init.guest?.onAccepted(h.envelope, h.unit)
        prefetch(h.unit)
      }
      init.onAdded()
    },
    restored(units) {
      const added = held.add(units.map(({ unit, expiresAt }) => ({ unit, expiresAt })))
      for (const h of added) prefetch(h.unit)
      if (added.length > 0) init.onAdded()
    },
    leaseFor(need) {
      let leaving: string | undefined
      for (const h of held.all()) {
        if (h.state === 'claiming' || !needs(h.unit, need)) continue
        if (h.state !== 'leaving') return h.unit.replicaId
        leaving ??= h.unit.replicaId
      }
      return leaving
    },
  }
}
