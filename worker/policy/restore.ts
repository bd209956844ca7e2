// After a restart: take back the units an earlier run of this daemon had checkpointed. Each envelope
// is verified again (signature, addressee, job type; expiry as of when it was accepted), then the
// leases are renewed first: units the coordinator no longer leases to us are discarded.
import { errorFields, type AnyJobType, type Logger, type UnitPayload } from '../../shared/index.js'
import type { CoordinatorClient } from '../coordinator-client.js'
import { verifyUnit, type TrustedKeys } from '../unit-verifier.js'
import type { DaemonGuest } from './guest-hooks.js'

export interface RestoreInit {
  guest: DaemonGuest
  client: CoordinatorClient
  trusted: TrustedKeys
  self: string
  jobTypes: ReadonlyMap<string, AnyJobType>
  log: Logger
}

export interface RestoredUnit {
  unit: UnitPayload
  expiresAt: number
}

export async function restoreUnits(r: RestoreInit): Promise<RestoredUnit[]> {
  const saved = await r.guest.restore()
  if (saved.length === 0) return []
  const units: UnitPayload[] = []
  for (const s of saved) {
    try {
      const unit = await verifyUnit(s.envelope, {
        trusted: r.trusted,
        self: r.self,
        jobTypes: r.jobTypes,
        now: s.acceptedAt,
      })
      r.guest.onAccepted(s.envelope, unit)
      units.push(unit)
    } catch (err) {
      r.log.warn('discarding a saved unit that does not verify', errorFields(err))
    }
  }
  if (units.length === 0) return []
  for (let attempt = 0; ; attempt++) {
    try {
      const reply = await r.client.renew(units.map((u) => u.replicaId))
      const out: RestoredUnit[] = []
      for (const unit of units) {
        const at = reply.expiresAt[unit.replicaId]
        if (at === undefined || reply.lost.includes(unit.replicaId)) {
          r.log.info('discarding a checkpoint: its lease is gone', { unitId: unit.unitId })
          r.guest.onFinished(unit, undefined)
        } else out.push({ unit, expiresAt: at })
      }
      return out
    } catch (err) {
      if (attempt >= 4) {
        r.log.warn(
          'could not renew the saved units; their checkpoints stay for the next start',
          errorFields(err),
        )
        return []
      }
      await new Promise((res) => setTimeout(res, 500 * 2 ** attempt))
    }
  }
}
