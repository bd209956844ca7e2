// The TypeBox builders job types describe their params with. Imported by name, not as TypeBox's
// `Type` namespace: the kernels are bundled for browsers (scripts/build.mjs), and the namespace pulls
// all of TypeBox in (about 46 KB minified) where these builders are about 3 KB.
import {
  Array as ArrayOf,
  Integer,
  Literal,
  Object as ObjectOf,
  Optional,
  String as StringOf,
  Union,
  Unsafe,
  type ObjectOptions,
  type Static,
  type TObject,
  type TProperties,
  type TSchema,
} from '@sinclair/typebox'

export const T = {
  Array: ArrayOf,
  Integer,
  Literal,
  Object: ObjectOf,
  Optional,
  String: StringOf,
  Union,
} as const

/** One of these strings, as a JSON Schema `enum` (TypeBox's unions of literals become `anyOf`). */
export function StringEnum<const V extends string>(
  values: readonly V[],
  options: Record<string, unknown> = {},
): ReturnType<typeof Unsafe<V>> {
  return Unsafe<V>({ ...options, type: 'string', enum: [...values] })
}

export type { Static, TSchema }

/** SHA-256 hex, as uploads are named. */
export const HASH_PATTERN = '^[0-9a-f]{64}$'

/** An object with these properties and no others: unknown fields are refused, naming the field. */
export function Closed<P extends TProperties>(properties: P, options: ObjectOptions = {}): TObject<P> {
  return ObjectOf(properties, { ...options, additionalProperties: false })
}
