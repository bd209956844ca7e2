// The coordinator's signing key file, and the list of coordinator keys a worker trusts.
import { fromBase64Url, keyIdOf, ConfigError, PUBLIC_KEY_BYTES } from '../shared/index.js'
import { loadOrCreateIdentity } from '../worker/index.js'
import type { TrustedKeys } from '../worker/index.js'
import { trustedKeysFrom } from '../worker/index.js'

export { loadOrCreateIdentity as loadOrCreateKey }

/** Parse coordinator public keys given as base64url (what `cohort coordinator` prints as "key"). */
export async function parseTrusted(keys: string[]): Promise<TrustedKeys> {
  if (keys.length === 0) {
    throw new ConfigError(
      'no trusted coordinator key: pass --trust <key> (printed by `cohort coordinator` as "key") or set COHORT_TRUST',
    )
  }
  const parsed = await Promise.all(
    keys.map(async (k) => {
      let pk: Uint8Array
      try {
        pk = fromBase64Url(k)
      } catch {
        throw new ConfigError(`trusted key "${k}" is not base64url`)
      }
      if (pk.length !== PUBLIC_KEY_BYTES)
        throw new ConfigError(`trusted key "${k}" is not a 32-byte Ed25519 public key`)
      return { keyId: await keyIdOf(pk), publicKey: pk }
    }),
  )
  return trustedKeysFrom(parsed)
}
