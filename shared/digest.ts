// SHA-256 content digests, identical in Node and browsers. Browsers use WebCrypto. Node uses its own
// crypto module when it is there (reached through `process.getBuiltinModule`, so this file imports
// nothing a browser lacks): WebCrypto's digest is asynchronous and costs tens of microseconds per
// call, which small units and Merkle trees pay many times over; Node's synchronous hash costs about one.
import { toHex } from './bytes.js'

/** The part of Node's crypto module used here. */
interface NodeHash {
  createHash(algorithm: 'sha256'): { update(data: Uint8Array): { digest(): Uint8Array } }
}

const nodeCrypto = (
  globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }
).process?.getBuiltinModule?.('node:crypto') as NodeHash | undefined

/** SHA-256 of `bytes`. */
export async function sha256(bytes: Uint8Array): Promise<Uint8Array> {
  if (nodeCrypto !== undefined) {
    const d = nodeCrypto.createHash('sha256').update(bytes).digest()
    return new Uint8Array(d.buffer, d.byteOffset, d.byteLength)
  }
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>))
}

/** SHA-256 of `bytes` as 64 lowercase hex characters. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  return toHex(await sha256(bytes))
}

export const DIGEST_HEX = /^[0-9a-f]{64}$/
