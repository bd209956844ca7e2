// Signs the units the coordinator hands out: the worker refuses anything this did not produce. The
// units of one grant or claim go under one signature (shared/unit-batch.ts), each with its proof.
import { randomId, sealUnits, type Identity, type UnitEnvelope, type UnitPayload } from '../shared/index.js'
import type { LeasedReplica } from './store/store.js'

export interface UnitSigner {
  readonly keyId: string
  /** The replicas leased to `worker`, signed together: one signature whatever their number. */
  signAll(replicas: LeasedReplica[], worker: string, now: number): Promise<UnitEnvelope[]>
}

export function createUnitSigner(identity: Identity): UnitSigner {
  const payload = (replica: LeasedReplica, worker: string, now: number, nonce: string): UnitPayload => ({
    type: 'unit',
    v: 1,
    unitId: replica.unitId,
    replicaId: replica.replicaId,
    jobId: replica.jobId,
    kind: replica.kind,
    input: replica.input,
    worker,
    issuedAt: now,
    expiresAt: replica.deadline,
    nonce,
    kid: identity.keyId,
  })
  return {
    keyId: identity.keyId,
    async signAll(replicas, worker, now) {
      if (replicas.length === 0) return []
      // One random draw per grant: each unit's nonce is it and the unit's place in the grant.
      const base = randomId()
      return sealUnits(
        replicas.map((r, i) => payload(r, worker, now, `${base}.${i}`)),
        identity,
      )
    },
  }
}
