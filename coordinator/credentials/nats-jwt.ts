// NATS decentralised-authentication JWTs (version 2 claims): base64url JSON header and claims, signed
// with the issuer's nkey (Ed25519). nats-server verifies them; this module only makes them, so it
// needs no JWT library: the claims below are the subset Cohort uses, named as nats-server reads them.
import { createHash } from 'node:crypto'
import { fromSeed, type KeyPair } from '@nats-io/nkeys'
import { ConfigError } from '../../shared/index.js'

/** Publish or subscribe permission lists. */
export interface NatsPermission {
  allow?: string[]
  deny?: string[]
}

export interface OperatorClaims {
  type: 'operator'
  version: 2
  system_account: string
  signing_keys?: string[]
}

/** Limits of an account; -1 means no limit. JetStream stays off unless its limits are set. */
export interface AccountLimits {
  subs: number
  data: number
  payload: number
  imports: number
  exports: number
  wildcards: boolean
  conn: number
  leaf: number
}

export interface AccountClaims {
  type: 'account'
  version: 2
  limits: AccountLimits
  signing_keys?: string[]
  default_permissions?: { pub: NatsPermission; sub: NatsPermission }
  exports?: unknown[]
  imports?: unknown[]
}

export interface UserClaims {
  type: 'user'
  version: 2
  pub: NatsPermission
  sub: NatsPermission
  /** Lets the user answer a request it received: at most `max` messages within `ttl` nanoseconds. */
  resp?: { max: number; ttl: number }
  subs: number
  data: number
  payload: number
  /** The account, when the JWT is signed by one of the account's signing keys. */
  issuer_account?: string
  /** Connection types allowed (STANDARD, WEBSOCKET, LEAFNODE, MQTT); empty means all. */
  allowed_connection_types?: string[]
}

export type NatsClaims = OperatorClaims | AccountClaims | UserClaims

export interface JwtInit<C extends NatsClaims> {
  /** The public nkey the JWT is about. */
  subject: string
  name: string
  nats: C
  /** Seconds since the epoch; default now. */
  issuedAt?: number
  /** Seconds since the epoch; default: never expires. */
  expiresAt?: number
}

const HEADER = toB64u(JSON.stringify({ typ: 'JWT', alg: 'ed25519-nkey' }))

function toB64u(text: string | Uint8Array): string {
  return Buffer.from(text).toString('base64url')
}

/** Encodes and signs a JWT with `issuer` (an operator, account or account signing key pair). */
export function encodeJwt<C extends NatsClaims>(init: JwtInit<C>, issuer: KeyPair): string {
  const claims: Record<string, unknown> = {
    iat: init.issuedAt ?? Math.floor(Date.now() / 1000),
    iss: issuer.getPublicKey(),
    name: init.name,
    sub: init.subject,
    nats: init.nats,
  }
  if (init.expiresAt !== undefined) claims['exp'] = init.expiresAt
  // The id is a digest of the claims without it, as NATS tools make it.
  claims['jti'] = createHash('sha256').update(JSON.stringify(claims)).digest('base64url').toUpperCase()
  const payload = toB64u(JSON.stringify(claims))
  const signature = issuer.sign(new TextEncoder().encode(`${HEADER}.${payload}`))
  return `${HEADER}.${payload}.${toB64u(signature)}`
}

/** The claims of a JWT, without checking its signature (for reading back what this module made). */
export function decodeJwtClaims(jwt: string): Record<string, unknown> {
  const part = jwt.split('.')[1]
  if (part === undefined) throw new ConfigError('not a JWT')
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>
}

/** A key pair from its seed text (`SO…`, `SA…`, `SU…`), with an error that says which seed is wrong. */
export function keyPairFromSeed(seed: string, what: string, prefix: 'O' | 'A' | 'U'): KeyPair {
  let kp: KeyPair
  try {
    kp = fromSeed(new TextEncoder().encode(seed.trim()))
  } catch (err) {
    throw new ConfigError(`${what} is not an nkey seed`, { cause: err })
  }
  if (!kp.getPublicKey().startsWith(prefix))
    throw new ConfigError(`${what} must be the seed of an ${prefix === 'A' ? 'account' : prefix} nkey`)
  return kp
}

/** The text of a `.creds` file: a user JWT and its nkey seed, as `nats` clients and tools read it. */
export function credsFile(jwt: string, seed: string): string {
  return [
    '-----BEGIN NATS USER JWT-----',
    jwt,
    '------END NATS USER JWT------',
    '',
    '************************* IMPORTANT *************************',
    'NKEY Seed printed below can be used to sign and prove identity.',
    'NKEYs are sensitive and should be treated as secrets.',
    '',
    '-----BEGIN USER NKEY SEED-----',
    seed,
    '------END USER NKEY SEED------',
    '',
    '*************************************************************',
    '',
  ].join('\n')
}

/** The JWT and seed of a `.creds` file's text. */
export function parseCredsFile(text: string, what = 'the creds file'): { jwt: string; seed: string } {
  const block = (name: RegExp): string | undefined => {
    const m = new RegExp(
      `-{3,}BEGIN ${name.source}-{3,}\\s*\\n\\s*(\\S+)\\s*\\n\\s*-{3,}END ${name.source}-{3,}`,
    ).exec(text)
    return m?.[1]
  }
  const jwt = block(/NATS USER JWT/)
  const seed = block(/USER NKEY SEED/)
  if (jwt === undefined || seed === undefined)
    throw new ConfigError(`${what} must hold a NATS USER JWT block and a USER NKEY SEED block`)
  keyPairFromSeed(seed, `the seed in ${what}`, 'U')
  return { jwt, seed }
}
