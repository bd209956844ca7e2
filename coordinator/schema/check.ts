// Checking untrusted JSON against a TypeBox schema with ajv, the one validator of request bodies and
// job params. A refusal is a ValidationError naming the field (`params.to`, `redundancy.quorum`) with
// a message a person can act on; a schema may word its own with `x-message` ("must be the SHA-256 of
// an uploaded module").
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import type { Static, TSchema } from '@sinclair/typebox'
import { ValidationError } from '../../shared/index.js'

/** Annotation keyword: the refusal message for a value the schema's own keywords refuse. */
export const MESSAGE_KEYWORD = 'x-message'

const ajv = new Ajv({
  allErrors: false,
  verbose: true,
  strict: true,
  strictTypes: false,
  strictRequired: false,
  keywords: [MESSAGE_KEYWORD],
})

const compiled = new WeakMap<TSchema, ValidateFunction>()

function validatorOf(schema: TSchema): ValidateFunction {
  let v = compiled.get(schema)
  if (v === undefined) {
    v = ajv.compile(schema)
    compiled.set(schema, v)
  }
  return v
}

/** `params` + `/input/records/3` → `params.input.records[3]`; the root alone is `root`. */
export function fieldOf(root: string, pointer: string): string {
  let out = root
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~')
    if (/^(0|[1-9][0-9]*)$/.test(seg)) out += `[${seg}]`
    else out = out === '' ? seg : `${out}.${seg}`
  }
  return out === '' ? 'body' : out
}

type Sub = Record<string, unknown>

function bounds(s: Sub): string {
  const min = s['minimum'] as number | undefined
  const max = s['maximum'] as number | undefined
  if (min !== undefined && max !== undefined) return ` in ${min}..${max}`
  if (min !== undefined) return ` of at least ${min}`
  if (max !== undefined) return ` of at most ${max}`
  return ''
}

const quoted = (values: unknown[]): string => values.map((v) => JSON.stringify(v)).join(', ')

/** The words of one ajv error, from the keyword and the schema that holds it. */
function describe(e: ErrorObject): string {
  const s = (e.parentSchema ?? {}) as Sub
  const own = s[MESSAGE_KEYWORD]
  if (typeof own === 'string' && e.keyword !== 'required' && e.keyword !== 'additionalProperties') return own
  const type = s['type']
  switch (e.keyword) {
    case 'type':
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      if (type === 'integer') return `must be an integer${bounds(s)}`
      if (type === 'number') return `must be a number${bounds(s)}`
      if (type === 'object') return 'must be an object'
      if (type === 'array') return 'must be a list'
      return `must be a ${String(type)}`
    case 'enum':
      return `must be one of ${quoted(s['enum'] as unknown[])}`
    case 'const':
      return `must be ${JSON.stringify(s['const'])}`
    case 'minItems':
    case 'maxItems':
      return `must have ${(s['minItems'] as number | undefined) ?? 0}..${(s['maxItems'] as number | undefined) ?? '∞'} items`
    case 'minLength':
    case 'maxLength':
      return `must be ${(s['minLength'] as number | undefined) ?? 0}..${(s['maxLength'] as number | undefined) ?? '∞'} characters long`
    case 'pattern':
      return `must match ${String(s['pattern'])}`
    default:
      return e.message ?? 'is not valid'
  }
}

const isUnion = (e: ErrorObject): boolean => e.keyword === 'oneOf' || e.keyword === 'anyOf'

/** Keys an object branch of a `oneOf` cannot do without. */
function requiredOf(branch: unknown): string[] {
  const req = (branch as Sub | undefined)?.['required']
  return Array.isArray(req) ? (req as string[]) : []
}

/**
 * One error worth showing. A failed `oneOf`/`anyOf` of objects is explained by the branch whose required keys
 * the value holds (its own errors), else by naming the branches.
 */
function pick(errors: ErrorObject[], value: unknown): ErrorObject {
  const last = errors[errors.length - 1] as ErrorObject
  if (!isUnion(last)) return errors[0] as ErrorObject
  const branches = last.schema as unknown[]
  const data = last.data
  const holds = (b: unknown): boolean =>
    typeof data === 'object' &&
    data !== null &&
    requiredOf(b).length > 0 &&
    requiredOf(b).every((k) => Object.hasOwn(data, k))
  const matching = branches.map((b, i) => (holds(b) ? i : -1)).filter((i) => i >= 0)
  if (matching.length === 1) {
    const prefix = `${last.schemaPath}/${matching[0]}/`
    const own = errors.filter((e) => e.schemaPath.startsWith(prefix))
    if (own.length > 0) return pick(own, value)
  }
  return last
}

function unionMessage(e: ErrorObject): string {
  const own = ((e.parentSchema ?? {}) as Sub)[MESSAGE_KEYWORD]
  if (typeof own === 'string') return own
  const names = (e.schema as unknown[]).map((b) => requiredOf(b).join(' and ')).filter((n) => n !== '')
  if (names.length === 0) return 'matches none of the allowed shapes'
  return `must hold exactly one of: ${names.join('; ')}`
}

/**
 * `value` as `schema` types it, or a ValidationError naming the field under `root` (`params`; '' for
 * a body whose fields are named alone, `type`, `redundancy.quorum`). The value is not modified.
 */
export function check<T extends TSchema>(schema: T, value: unknown, root: string): Static<T> {
  const validate = validatorOf(schema)
  if (validate(value)) return value
  const errors = validate.errors ?? []
  if (errors.length === 0) throw new ValidationError(fieldOf(root, ''), 'is not valid')
  const e = pick(errors, value)
  if (e.keyword === 'required') {
    const missing = (e.params as { missingProperty: string }).missingProperty
    throw new ValidationError(fieldOf(root, `${e.instancePath}/${missing}`), 'is required')
  }
  if (e.keyword === 'additionalProperties') {
    const extra = (e.params as { additionalProperty: string }).additionalProperty
    throw new ValidationError(fieldOf(root, `${e.instancePath}/${extra}`), 'unknown field')
  }
  const message = isUnion(e) ? unionMessage(e) : describe(e)
  throw new ValidationError(fieldOf(root, e.instancePath), message)
}
