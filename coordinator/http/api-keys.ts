// API keys and quotas: the keys file's format, checked once with errors that name the field.
//
// {
//   "keys": [
//     { "name": "alice", "role": "submitter", "sha256": "<SHA-256 hex of the key>",
//       "quota": { "unitsInFlight": 5000 } },
//     { "name": "ops", "role": "admin", "key": "<the key itself, at least 32 characters>" }
//   ]
// }
//
// A key is given either as its SHA-256 (so the file holds no secret) or as itself; either way only
// the digest is kept in memory. Names own jobs and uploads; `anonymous` is reserved for callers
// without a key.
import { createHash } from 'node:crypto'
import { ConfigError } from '../../shared/index.js'

/** Limits of one owner. `null` means no limit. */
export interface Quota {
  /** Sum of the units of the owner's unfinished jobs (queued or running). */
  unitsInFlight: number | null
  /** Bytes of the owner's uploads (modules, blobs, datasets) not yet expired. */
  storedBytes: number | null
  /** Requests per minute, a token bucket in Redis shared by all coordinators (bursts up to a minute's worth). */
  requestsPerMinute: number | null
  /** Highest job priority the owner may ask for (−100..100). */
  maxPriority: number
}

export type Role = 'submitter' | 'admin'

/** One key as the coordinator holds it: its name, role, SHA-256 digest and quota overrides. */
export interface ApiKeySpec {
  name: string
  role: Role
  /** SHA-256 hex of the key. */
  sha256: string
  quota?: Partial<Quota>
}

/** Defaults of a submitter key. */
export const SUBMITTER_QUOTA: Quota = {
  unitsInFlight: 100_000,
  storedBytes: 1024 * 1024 * 1024,
  requestsPerMinute: 600,
  maxPriority: 10,
}

/** Defaults of anonymous callers (all of them one owner), when anonymous submission is on. */
export const ANONYMOUS_QUOTA: Quota = {
  unitsInFlight: 1_000,
  storedBytes: 64 * 1024 * 1024,
  requestsPerMinute: 120,
  maxPriority: 0,
}

/** Admin keys: no limits unless the key sets some. */
export const ADMIN_QUOTA: Quota = {
  unitsInFlight: null,
  storedBytes: null,
  requestsPerMinute: null,
  maxPriority: 100,
}

export const ANONYMOUS = 'anonymous'
export const MIN_KEY_CHARS = 32
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/
const SHA256_HEX = /^[0-9a-f]{64}$/
const MAX_KEYS = 10_000

export const apiKeyDigest = (key: string): string => createHash('sha256').update(key, 'utf8').digest('hex')

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v)

function limit(field: string, v: unknown, min: number, max: number, nullable: boolean): number | null {
  if (v === null && nullable) return null
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max)
    throw new ConfigError(
      `${field} must be an integer from ${min} to ${max}${nullable ? ' (or null: no limit)' : ''}, got ${JSON.stringify(v)}`,
    )
  return v
}

/** Check quota overrides; `field` names where they are (e.g. `keys[1].quota`). */
export function parseQuota(v: unknown, field: string): Partial<Quota> {
  if (!isRecord(v)) throw new ConfigError(`${field} must be an object`)
  const q: Partial<Quota> = {}
  for (const [k, x] of Object.entries(v)) {
    const f = `${field}.${k}`
    if (k === 'unitsInFlight') q.unitsInFlight = limit(f, x, 0, 1e12, true)
    else if (k === 'storedBytes') q.storedBytes = limit(f, x, 0, 2 ** 50, true)
    else if (k === 'requestsPerMinute') q.requestsPerMinute = limit(f, x, 1, 1e9, true)
    else if (k === 'maxPriority') q.maxPriority = limit(f, x, -100, 100, false) as number
    else
      throw new ConfigError(
        `${f} is not a quota; use unitsInFlight, storedBytes, requestsPerMinute or maxPriority`,
      )
  }
  return q
}

/** A whole quota: `given` over `base`. */
export function resolveQuota(base: Quota, given: unknown, field: string): Quota {
  return { ...base, ...parseQuota(given, field) }
}

function parseKey(v: unknown, field: string): ApiKeySpec {
  if (!isRecord(v)) throw new ConfigError(`${field} must be an object with name, role and key or sha256`)
  for (const k of Object.keys(v))
    if (!['name', 'role', 'key', 'sha256', 'quota'].includes(k))
      throw new ConfigError(`${field}.${k} is not known; a key has name, role, key or sha256, and quota`)
  const name = v['name']
  if (typeof name !== 'string' || !NAME.test(name))
    throw new ConfigError(`${field}.name must be 1..64 of [A-Za-z0-9_.-], starting with a letter or digit`)
  if (name.toLowerCase() === ANONYMOUS)
    throw new ConfigError(`${field}.name "${name}" is reserved for callers without a key`)
  const role = v['role'] ?? 'submitter'
  if (role !== 'submitter' && role !== 'admin')
    throw new ConfigError(`${field}.role must be "submitter" or "admin", got ${JSON.stringify(role)}`)
  const key = v['key']
  const digest = v['sha256']
  if ((key === undefined) === (digest === undefined))
    throw new ConfigError(`${field} must have exactly one of key (the secret) or sha256 (its SHA-256 hex)`)
  let sha256: string
  if (key !== undefined) {
    if (typeof key !== 'string' || key.length < MIN_KEY_CHARS || key.length > 512 || /\s/.test(key))
      throw new ConfigError(
        `${field}.key must be ${MIN_KEY_CHARS}..512 characters without spaces (e.g. \`openssl rand -hex 32\`)`,
      )
    sha256 = apiKeyDigest(key)
  } else {
    if (typeof digest !== 'string' || !SHA256_HEX.test(digest))
      throw new ConfigError(
        `${field}.sha256 must be 64 lowercase hex characters (\`printf %s "$KEY" | sha256sum\`)`,
      )
    sha256 = digest
  }
  const spec: ApiKeySpec = { name, role, sha256 }
  if (v['quota'] !== undefined) spec.quota = parseQuota(v['quota'], `${field}.quota`)
  return spec
}

/** Check a list of keys (as in the file's `keys`); `field` names it in errors. Names and keys are unique. */
export function parseApiKeyList(v: unknown, field: string): ApiKeySpec[] {
  if (!Array.isArray(v) || v.length > MAX_KEYS)
    throw new ConfigError(`${field} must be a list of at most ${MAX_KEYS} keys`)
  const specs = v.map((k, i) => parseKey(k, `${field}[${i}]`))
  const names = new Set<string>()
  const digests = new Set<string>()
  specs.forEach((s, i) => {
    if (names.has(s.name.toLowerCase()))
      throw new ConfigError(`${field}[${i}].name "${s.name}" is used by another key`)
    if (digests.has(s.sha256)) throw new ConfigError(`${field}[${i}] is the same key as another entry`)
    names.add(s.name.toLowerCase())
    digests.add(s.sha256)
  })
  return specs
}

/** Parse a keys file's text; `source` (its path) starts every error. */
export function parseApiKeysFile(text: string, source: string): ApiKeySpec[] {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (err) {
    throw new ConfigError(`${source}: not JSON: ${(err as Error).message}`)
  }
  try {
    if (!isRecord(doc)) throw new ConfigError('the file must hold an object like {"keys": [...]}')
    for (const k of Object.keys(doc))
      if (k !== 'keys') throw new ConfigError(`${k} is not known; the file has only "keys"`)
    return parseApiKeyList(doc['keys'], 'keys')
  } catch (err) {
    throw new ConfigError(`${source}: ${(err as Error).message}`, { cause: err })
  }
}
