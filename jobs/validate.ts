// Strict readers for untrusted job data (params from HTTP, inputs and outputs from the network).
// Every failure is a ValidationError whose `field` is the full path, e.g. `params.to`.
import { ValidationError } from '../shared/errors.js'

export type Fields = Record<string, unknown>

/** A plain object (not an array, null, bytes or class instance) holding only `allowed` keys. */
export function readRecord(raw: unknown, path: string, allowed: readonly string[], noun = 'field'): Fields {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ValidationError(path, 'must be an object')
  }
  const proto: unknown = Object.getPrototypeOf(raw)
  if (proto !== Object.prototype && proto !== null) throw new ValidationError(path, 'must be a plain object')
  for (const key of Object.keys(raw)) {
    if (!allowed.includes(key)) throw new ValidationError(`${path}.${key}`, `unknown ${noun}`)
  }
  return raw as Fields
}

/** An integer in min..max; `fallback` is used when the key is absent (undefined counts as absent). */
export function readInt(
  rec: Fields,
  path: string,
  key: string,
  min: number,
  max: number,
  fallback?: number,
): number {
  const v = Object.hasOwn(rec, key) ? rec[key] : undefined
  if (v === undefined) {
    if (fallback !== undefined) return fallback
    throw new ValidationError(`${path}.${key}`, 'is required')
  }
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new ValidationError(`${path}.${key}`, `must be an integer in ${min}..${max}`)
  }
  return v
}

/** A list of at most `maxItems` integers, each in min..max. */
export function readIntList(
  rec: Fields,
  path: string,
  key: string,
  maxItems: number,
  min: number,
  max: number,
): number[] {
  const v = Object.hasOwn(rec, key) ? rec[key] : undefined
  if (!Array.isArray(v)) throw new ValidationError(`${path}.${key}`, 'must be a list')
  if (v.length > maxItems) throw new ValidationError(`${path}.${key}`, `must have at most ${maxItems} items`)
  return v.map((item: unknown, i) => {
    if (typeof item !== 'number' || !Number.isSafeInteger(item) || item < min || item > max) {
      throw new ValidationError(`${path}.${key}[${i}]`, `must be an integer in ${min}..${max}`)
    }
    return item
  })
}

/** Throws an Error named 'AbortError' when the signal has fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) {
    const err = new Error('unit aborted')
    err.name = 'AbortError'
    throw err
  }
}
