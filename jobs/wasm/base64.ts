// Standard base64 (RFC 4648 §4, with or without padding) for the wasm job type's params and results.
import { fromBase64Url, toBase64Url } from '../../shared/index.js'

export function toBase64(bytes: Uint8Array): string {
  const url = toBase64Url(bytes).replace(/-/g, '+').replace(/_/g, '/')
  return url + '='.repeat((4 - (url.length % 4)) % 4)
}

/** Throws TypeError when `text` is not base64. */
export function fromBase64(text: string): Uint8Array {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) throw new TypeError('not a base64 string')
  return fromBase64Url(text.replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_'))
}
