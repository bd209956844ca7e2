// SHA-256 content digests through WebCrypto, identical in Node and browsers.
import { toHex } from './bytes.js'

/** SHA-256 of `bytes` as 64 lowercase hex characters. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>)
  return toHex(new Uint8Array(d))
}

export const DIGEST_HEX = /^[0-9a-f]{64}$/
