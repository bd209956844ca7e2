// Small, strict readers for decoded messages: every failure names the field that is wrong.
import { ProtocolError } from './errors.js'

export type Rec = Record<string, unknown>

export function expectRecord(value: unknown, what: string): Rec {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    throw new ProtocolError(`${what} must be a map`)
  }
  return value as Rec
}

export function literal<T extends string | number>(rec: Rec, field: string, expected: T): T {
  if (rec[field] !== expected) throw new ProtocolError(`${field} must be ${JSON.stringify(expected)}`)
  return expected
}

export function stringField(rec: Rec, field: string, maxLength: number, pattern?: RegExp): string {
  const v = rec[field]
  if (typeof v !== 'string') throw new ProtocolError(`${field} must be a string`)
  if (v.length > maxLength) throw new ProtocolError(`${field} is longer than ${maxLength} characters`)
  if (pattern !== undefined && !pattern.test(v)) throw new ProtocolError(`${field} has an invalid format`)
  return v
}

export function intField(rec: Rec, field: string, min: number, max: number): number {
  const v = rec[field]
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new ProtocolError(`${field} must be an integer in ${min}..${max}`)
  }
  return v
}

export function bytesField(rec: Rec, field: string, maxLength: number, minLength = 0): Uint8Array {
  const v = rec[field]
  if (!(v instanceof Uint8Array)) throw new ProtocolError(`${field} must be bytes`)
  if (v.length > maxLength || v.length < minLength) {
    throw new ProtocolError(`${field} must be ${minLength}..${maxLength} bytes, got ${v.length}`)
  }
  return v
}

export function arrayField(rec: Rec, field: string, maxItems: number): unknown[] {
  const v = rec[field]
  if (!Array.isArray(v)) throw new ProtocolError(`${field} must be a list`)
  if (v.length > maxItems) throw new ProtocolError(`${field} has more than ${maxItems} items`)
  return v
}

export function stringList(
  rec: Rec,
  field: string,
  maxItems: number,
  maxLength: number,
  pattern?: RegExp,
): string[] {
  return arrayField(rec, field, maxItems).map((v, i) =>
    stringField({ [`${field}[${i}]`]: v }, `${field}[${i}]`, maxLength, pattern),
  )
}
