// What a worker checks before it runs anything: the coordinator's signature by a trusted key, the
// domain tag (or, for a unit of a batch, its proof up to the signed root), that the unit is addressed to this worker, that it has not expired, and its input.
import {
  ExpiredError,
  openUnit,
  parseUnitPayload,
  ProtocolError,
  SignatureError,
  toBase64Url,
  type AnyJobType,
  type UnitEnvelope,
  type UnitPayload,
} from '../shared/index.js'

export interface TrustedKeys {
  /** Key id -> raw public key. */
  byKeyId: ReadonlyMap<string, Uint8Array>
  has(publicKey: Uint8Array): boolean
}

export function trustedKeysFrom(keys: { keyId: string; publicKey: Uint8Array }[]): TrustedKeys {
  const byKeyId = new Map(keys.map((k) => [k.keyId, k.publicKey]))
  const ids = new Set(keys.map((k) => toBase64Url(k.publicKey)))
  return { byKeyId, has: (pk) => ids.has(toBase64Url(pk)) }
}

export interface VerifyInit {
  trusted: TrustedKeys
  /** This worker's id (base64url public key). */
  self: string
  jobTypes: ReadonlyMap<string, AnyJobType>
  now: number
}

/** Returns the unit payload, with its input parsed by its job type; throws on anything wrong. */
export async function verifyUnit(envelope: UnitEnvelope, v: VerifyInit): Promise<UnitPayload> {
  const unit = parseUnitPayload(await openUnit(envelope, (signer) => v.trusted.has(signer)))
  const key = v.trusted.byKeyId.get(unit.kid)
  if (key === undefined || toBase64Url(key) !== toBase64Url(envelope.signer)) {
    throw new SignatureError(`unit names key ${unit.kid}, which is not the key that signed it`)
  }
  if (unit.worker !== v.self) throw new ProtocolError('unit is addressed to another worker')
  if (unit.expiresAt <= v.now)
    throw new ExpiredError(`unit ${unit.unitId} expired at ${new Date(unit.expiresAt).toISOString()}`)
  const jobType = v.jobTypes.get(unit.kind)
  if (jobType === undefined) throw new ProtocolError(`job type ${unit.kind} is not supported by this worker`)
  return { ...unit, input: jobType.parseInput(unit.input) as unknown }
}
