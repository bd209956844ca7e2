// Test helper: a raw NATS connection as one volunteer identity, for tests that speak the protocol
// directly (attackers, protocol checks). Every such connection goes through here, so the way a
// volunteer logs in is defined once for all tests: it signs up with a coordinator over HTTP (proof of
// work included) for NATS credentials of its own, then connects with them and its own inbox prefix.
import { connect } from '@nats-io/transport-node'
import { jwtAuthenticator, type Authenticator, type NatsConnection } from '@nats-io/nats-core'
import { createUser } from '@nats-io/nkeys'
import { createVolunteerIssuer } from '../../coordinator/index.js'
import type { Services } from '../../scripts/services.js'
import {
  generateIdentity,
  inboxPrefixFor,
  natsServers,
  silentLogger,
  subjectsFor,
  type Identity,
} from '../../shared/index.js'
import {
  connectWithCredentials,
  createCoordinatorClient,
  createVolunteerCredentials,
  type CoordinatorClient,
  type CredentialStore,
  type StoredCredentials,
  type VolunteerCredentials,
  type VolunteerCredentialsInit,
} from '../../worker/index.js'

/**
 * Where a volunteer connects (NATS) and gets its credentials: by signing up with a coordinator's HTTP
 * API, or (tests of peers without a coordinator) issued directly with the deployment's account seed,
 * exactly as a coordinator would issue them.
 */
export type VolunteerAccess = SignupAccess | { natsUrl: string; accountSeed: string; subjectPrefix: string }

/** A coordinator to sign up with and the NATS server to connect to. */
export interface SignupAccess {
  natsUrl: string
  coordinatorUrl: string
}

/** Access by credentials issued with the private nats-server's account seed, for `subjectPrefix`. */
export function issuedAccess(services: Services, subjectPrefix: string): VolunteerAccess {
  if (services.natsAccountSeed === undefined) throw new Error('issuedAccess needs the private nats-server')
  return { natsUrl: services.natsUrl, accountSeed: services.natsAccountSeed, subjectPrefix }
}

export interface VolunteerConnectionOptions {
  /** NATS client name, for the server's connection list. */
  name?: string
  /** Reconnect after a server restart (default false: fail fast). */
  reconnect?: boolean
  /** Passed to the sign-up (an owner key to link to, a fetch that adds headers). */
  signup?: VolunteerCredentialsInit['signup']
}

/** A credential store in memory; `saved` holds what was stored. */
export function memoryCredentialStore(): CredentialStore & { saved: StoredCredentials | undefined } {
  const store = {
    saved: undefined as StoredCredentials | undefined,
    load: () => Promise.resolve(store.saved as unknown),
    save(c: StoredCredentials) {
      store.saved = c
      return Promise.resolve()
    },
  }
  return store
}

/** Credentials for `identity`, signed up with `access.coordinatorUrl` (kept in memory). */
export function volunteerCredentials(
  access: { coordinatorUrl: string },
  identity: Identity,
  signup?: VolunteerCredentialsInit['signup'],
): VolunteerCredentials {
  return createVolunteerCredentials({
    coordinatorUrl: access.coordinatorUrl,
    identity,
    store: memoryCredentialStore(),
    log: silentLogger,
    retryMs: 200,
    ...(signup === undefined ? {} : { signup }),
  })
}

/** Signs `identity` up through `access` and connects to NATS as that volunteer, with its own inbox prefix. */
export async function connectVolunteer(
  access: VolunteerAccess,
  identity: Identity,
  opts: VolunteerConnectionOptions = {},
): Promise<NatsConnection> {
  const open = (authenticator: Authenticator) =>
    connect({
      servers: natsServers(access.natsUrl),
      inboxPrefix: inboxPrefixFor(identity.id),
      authenticator,
      ...(opts.name === undefined ? {} : { name: opts.name }),
      ...(opts.reconnect === true
        ? { maxReconnectAttempts: -1, reconnectTimeWait: 200, ignoreAuthErrorAbort: true }
        : {}),
    })
  if ('accountSeed' in access) {
    const user = createUser()
    const issuer = createVolunteerIssuer({
      accountSeed: access.accountSeed,
      subjectPrefix: access.subjectPrefix,
      ttlMs: 3600_000,
    })
    return open(jwtAuthenticator(issuer.issue(identity.id, user.getPublicKey()).jwt, user.getSeed()))
  }
  const credentials = volunteerCredentials(access, identity, opts.signup)
  const nc = await connectWithCredentials(credentials, open)
  void nc.closed().then(() => credentials.stop())
  return nc
}

/** A volunteer a test plays itself: its identity, its own NATS connection, a coordinator client on it. */
export interface RawVolunteer {
  identity: Identity
  nats: NatsConnection
  client: CoordinatorClient
}

/**
 * A volunteer on a connection of its own, signed up through `cluster.volunteerAccess` (a new identity
 * unless `opts.identity`), speaking to the coordinators of `cluster.subjectPrefix` with a client whose
 * requests time out after `opts.timeoutMs` (the client's default unless set). The connection closes
 * when the test ends.
 */
export async function rawVolunteer(
  t: { teardown(fn: () => unknown): void },
  cluster: { volunteerAccess: VolunteerAccess; subjectPrefix: string },
  opts: VolunteerConnectionOptions & { identity?: Identity; timeoutMs?: number } = {},
): Promise<RawVolunteer> {
  const identity = opts.identity ?? (await generateIdentity(true))
  const nats = await connectVolunteer(cluster.volunteerAccess, identity, opts)
  t.teardown(() => nats.close())
  const client = createCoordinatorClient({
    nats,
    identity,
    subjects: subjectsFor(cluster.subjectPrefix),
    timeoutMs: opts.timeoutMs,
  })
  return { identity, nats, client }
}
