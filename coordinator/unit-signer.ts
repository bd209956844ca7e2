// Signs the units the coordinator hands out: the worker refuses anything this did not produce.
import { randomId, seal, type Identity, type SignedEnvelope, type UnitPayload } from '../shared/index.js'
import type { LeasedReplica } from './store/store.js'

export interface UnitSigner {
  readonly keyId: string
  sign(replica: LeasedReplica, worker: string, now: number): Promise<SignedEnvelope>
}

export function createUnitSigner(identity: Identity): UnitSigner {
  return {
    keyId: identity.keyId,
    async sign(replica, worker, now) {
      const payload: UnitPayload = {
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
        nonce: randomId(),
        kid: identity.keyId,
      }
      return seal('unit', payload, identity)
    },
  }
}
