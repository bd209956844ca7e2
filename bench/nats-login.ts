// How the benchmark's coordinators and volunteers log in to NATS: the private nats-server's
// coordinator JWT and account seed (volunteers sign up with the coordinator, as `cohort worker
// --coordinator` does), or NATS_USER / NATS_PASS for an external server without operator mode.
import { connect } from '@nats-io/transport-node'
import type { NatsConnection } from '@nats-io/nats-core'
import type { CoordinatorInit } from '../coordinator/index.js'
import { inboxPrefixFor, silentLogger, type Identity } from '../shared/index.js'
import {
  connectWithCredentials,
  createMemoryCredentialStore,
  createVolunteerCredentials,
} from '../worker/index.js'

export type NatsLogin = { user: string; pass: string } | { jwt: string; seed: string }

/** Benchmarks sign up many volunteers from one address, cheaply: sign-up is measured on its own (signup.ts). */
export const BENCH_SIGNUP_TUNING = {
  signupPowBits: 8,
  signupPerAddress: 1_000_000,
  // The bench's daemons are its own hosts: their results anchor units from the first one.
  vouchSignups: true,
} as const

/** The coordinator's NATS login options, and the account seed that lets it sign volunteers up. */
export function coordinatorLogin(
  login: NatsLogin | undefined,
  accountSeed: string | undefined,
): Pick<CoordinatorInit, 'natsUser' | 'natsPass' | 'natsCredentials' | 'natsAccountSeed'> {
  return {
    ...(login === undefined
      ? {}
      : 'user' in login
        ? { natsUser: login.user, natsPass: login.pass }
        : { natsCredentials: login }),
    ...(accountSeed === undefined ? {} : { natsAccountSeed: accountSeed }),
  }
}

/**
 * A volunteer's connection: signed up with `coordinatorUrl` when given (credentials kept in memory),
 * else without credentials (an external NATS that lets volunteers in anonymously).
 */
export async function volunteerConnection(
  natsUrl: string,
  coordinatorUrl: string | undefined,
  identity: Identity,
  name: string,
): Promise<NatsConnection> {
  const options = { servers: natsUrl, name, inboxPrefix: inboxPrefixFor(identity.id) }
  if (coordinatorUrl === undefined) return connect(options)
  const credentials = createVolunteerCredentials({
    coordinatorUrl,
    identity,
    store: createMemoryCredentialStore(),
    log: silentLogger,
  })
  const nc = await connectWithCredentials(credentials, (authenticator) =>
    connect({ ...options, authenticator }),
  )
  void nc.closed().then(() => credentials.stop())
  return nc
}
