// A volunteer's NATS credentials: the user nkey it generated and the JWT a coordinator issued for it
// at sign-up. Kept in a store beside the identity (a 0600 file for the daemon, IndexedDB in a
// browser), reused until they near their expiry or the server refuses them, then renewed by signing
// up again. The NATS connection logs in through `authenticator`, which always gives the newest JWT,
// so a reconnect after a renewal (or after the server closed an expired session) uses it.
import {
  AuthorizationError,
  jwtAuthenticator,
  UserAuthenticationExpiredError,
  type Authenticator,
  type NatsConnection,
} from '@nats-io/nats-core'
import { createUser, fromSeed } from '@nats-io/nkeys'
import {
  errorFields,
  expectRecord,
  intField,
  NATS_USER_KEY_PATTERN,
  stringField,
  type Identity,
  type Logger,
} from '../shared/index.js'
import { signUp, SignupError, type SignUpOptions } from './signup-client.js'

/** What is stored: the nkey seed and the JWT for it, and whom and where they belong to. */
export interface StoredCredentials {
  v: 1
  peerId: string
  coordinatorUrl: string
  /** The user nkey's seed (`SU…`). */
  natsSeed: string
  jwt: string
  /** Milliseconds since the epoch. */
  expiresAt: number
}

export interface CredentialStore {
  /** The stored value, or undefined when there is none. */
  load(): Promise<unknown>
  save(credentials: StoredCredentials): Promise<void>
}

export interface VolunteerCredentialsInit {
  coordinatorUrl: string
  identity: Identity
  store: CredentialStore
  log: Logger
  /** Renew when less than this much of a credential's life is left. Default: a fifth of it, at least 30 s, at most half. */
  renewBeforeMs?: number
  /** Wait before trying again after a failed sign-up (doubling up to 5 minutes). Default 2000 ms. */
  retryMs?: number
  /** Passed to each sign-up (fetch, timeouts, progress). */
  signup?: Pick<SignUpOptions, 'fetch' | 'requestTimeoutMs' | 'powTimeoutMs' | 'onPow' | 'owner'>
  now?: () => number
}

export interface VolunteerCredentials {
  /** Loads usable stored credentials, or signs up until it succeeds (or `signal` aborts). */
  ready(signal?: AbortSignal): Promise<void>
  /** For the NATS connection: the newest JWT, signed with the nkey. */
  readonly authenticator: Authenticator
  /** When the current JWT expires (ms since the epoch); 0 before `ready`. */
  readonly expiresAt: number
  /** Signs up again now, with the same nkey; concurrent calls share one sign-up. */
  renew(signal?: AbortSignal): Promise<void>
  /** Renews before expiry, and at once when `nc` reports that the server refused or expired the JWT. */
  watch(nc: NatsConnection): void
  stop(): void
}

function parseStored(value: unknown): StoredCredentials | undefined {
  try {
    const r = expectRecord(value, 'stored credentials')
    if (r['v'] !== 1) return undefined
    return {
      v: 1,
      peerId: stringField(r, 'peerId', 43),
      coordinatorUrl: stringField(r, 'coordinatorUrl', 2048),
      natsSeed: stringField(r, 'natsSeed', 64, /^SU[A-Z2-7]{56}$/),
      jwt: stringField(r, 'jwt', 16 * 1024),
      expiresAt: intField(r, 'expiresAt', 0, Number.MAX_SAFE_INTEGER),
    }
  } catch {
    return undefined
  }
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(done, ms)
    function done(): void {
      signal?.removeEventListener('abort', abort)
      resolve()
    }
    function abort(): void {
      clearTimeout(timer)
      reject(signal?.reason as Error)
    }
    signal?.addEventListener('abort', abort, { once: true })
  })

export function createVolunteerCredentials(init: VolunteerCredentialsInit): VolunteerCredentials {
  const { identity, log } = init
  const now = init.now ?? Date.now
  const encoder = new TextEncoder()
  let seed = ''
  let jwt = ''
  let expiresAt = 0
  let issuedAt = 0
  let renewing: Promise<void> | undefined
  let timer: ReturnType<typeof setTimeout> | undefined
  let stopped = false
  const stopper = new AbortController()

  const renewAt = (): number => {
    const life = Math.max(0, expiresAt - issuedAt)
    // A fifth of the life, at least 30 s, and never more than half of it (short-lived credentials).
    const before =
      init.renewBeforeMs ?? Math.min(Math.floor(life / 2), Math.max(30_000, Math.floor(life / 5)))
    return expiresAt - before
  }

  const schedule = (): void => {
    clearTimeout(timer)
    if (stopped) return
    timer = setTimeout(
      () => {
        renew().catch((err: unknown) => log.warn('credential renewal failed', errorFields(err)))
      },
      Math.min(2 ** 31 - 1, Math.max(0, renewAt() - now())),
    )
  }

  const once = async (signal?: AbortSignal): Promise<void> => {
    if (seed === '') seed = new TextDecoder().decode(createUser().getSeed())
    const natsKey = fromSeed(encoder.encode(seed)).getPublicKey()
    if (!NATS_USER_KEY_PATTERN.test(natsKey))
      throw new SignupError('the generated nkey is not a user key', undefined)
    const reply = await signUp({
      ...init.signup,
      coordinatorUrl: init.coordinatorUrl,
      identity,
      natsKey,
      ...(signal === undefined ? {} : { signal }),
    })
    jwt = reply.jwt
    issuedAt = now()
    expiresAt = reply.expiresAt
    await init.store.save({
      v: 1,
      peerId: identity.id,
      coordinatorUrl: init.coordinatorUrl,
      natsSeed: seed,
      jwt,
      expiresAt,
    })
    log.info('signed up: NATS credentials issued', {
      expiresAt: new Date(expiresAt).toISOString(),
      ...(reply.owner === undefined || reply.owner === identity.id ? {} : { owner: reply.owner }),
    })
    schedule()
  }

  /** Signs up until it succeeds; a refusal that names a wait is honoured, others back off. */
  const untilDone = async (signal?: AbortSignal): Promise<void> => {
    let wait = init.retryMs ?? 2000
    for (;;) {
      try {
        await once(signal)
        return
      } catch (err) {
        if (signal?.aborted === true || stopped) throw err
        const ms = err instanceof SignupError && err.retryAfterMs !== undefined ? err.retryAfterMs : wait
        log.warn('sign-up failed; trying again', { inMs: ms, ...errorFields(err) })
        // 4xx other than 429 will not pass by retrying at once: back off as for an outage.
        await sleep(ms, signal)
        wait = Math.min(300_000, wait * 2)
      }
    }
  }

  const renew = (signal?: AbortSignal): Promise<void> => {
    renewing ??= untilDone(
      signal === undefined ? stopper.signal : AbortSignal.any([signal, stopper.signal]),
    ).finally(() => (renewing = undefined))
    return renewing
  }

  return {
    get expiresAt() {
      return expiresAt
    },
    authenticator: jwtAuthenticator(
      () => jwt,
      () => encoder.encode(seed),
    ),
    async ready(signal) {
      const stored = parseStored(await init.store.load().catch(() => undefined))
      if (stored !== undefined && stored.peerId === identity.id) seed = stored.natsSeed
      if (
        stored !== undefined &&
        stored.peerId === identity.id &&
        stored.coordinatorUrl === init.coordinatorUrl &&
        stored.expiresAt > now()
      ) {
        jwt = stored.jwt
        expiresAt = stored.expiresAt
        // The issue time is not stored: treat the credentials as issued a day before they expire.
        issuedAt = Math.min(now(), expiresAt - 24 * 3600_000)
        if (renewAt() > now()) {
          schedule()
          return
        }
      }
      await renew(signal)
    },
    renew,
    watch(nc) {
      void (async () => {
        for await (const s of nc.status()) {
          if (stopped) return
          const e = s.type === 'error' ? s.error : undefined
          if (e instanceof AuthorizationError || e instanceof UserAuthenticationExpiredError) {
            log.info('the server refused or expired our NATS credentials; signing up again', errorFields(e))
            renew().catch((err: unknown) => log.warn('credential renewal failed', errorFields(err)))
          }
        }
      })().catch((err: unknown) => log.debug('nats status stream ended', errorFields(err)))
    },
    stop() {
      stopped = true
      clearTimeout(timer)
      stopper.abort(new Error('stopped'))
    },
  }
}

/**
 * Opens a NATS connection with `credentials` (`open` passes the authenticator to the client). If the
 * server refuses stored credentials (a new account, a revoked key), signs up again once and retries.
 */
export async function connectWithCredentials(
  credentials: VolunteerCredentials,
  open: (authenticator: Authenticator) => Promise<NatsConnection>,
  signal?: AbortSignal,
): Promise<NatsConnection> {
  await credentials.ready(signal)
  let nc: NatsConnection
  try {
    nc = await open(credentials.authenticator)
  } catch (err) {
    if (!(err instanceof AuthorizationError || err instanceof UserAuthenticationExpiredError)) throw err
    await credentials.renew(signal)
    nc = await open(credentials.authenticator)
  }
  credentials.watch(nc)
  return nc
}

/** Credentials kept in memory only: a volunteer that signs up again each time it starts. */
export function createMemoryCredentialStore(): CredentialStore {
  let saved: StoredCredentials | undefined
  return {
    load: () => Promise.resolve(saved),
    save(credentials) {
      saved = credentials
      return Promise.resolve()
    },
  }
}
