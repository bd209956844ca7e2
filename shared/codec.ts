// The wire codec: msgpack through msgpackr, with size bounds checked before anything is decoded.
import { Packr } from 'msgpackr'
import { LimitError, ProtocolError } from './errors.js'

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false, bundleStrings: false })

/** The largest message Cohort accepts on any NATS subject. */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024

export function encode(value: unknown): Uint8Array {
  const b = packr.pack(value)
  // Copy out of msgpackr's shared buffer so callers may keep the bytes.
  return new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength))
}

/** Decode untrusted bytes; throws LimitError when too large and ProtocolError when malformed. */
export function decode(bytes: Uint8Array, maxBytes: number = MAX_MESSAGE_BYTES): unknown {
  if (bytes.length > maxBytes) throw new LimitError(`message of ${bytes.length} bytes exceeds ${maxBytes}`)
  if (bytes.length === 0) throw new ProtocolError('empty message')
  try {
    return packr.unpack(bytes)
  } catch (err) {
    throw new ProtocolError('message is not valid msgpack', { cause: err })
  }
}
