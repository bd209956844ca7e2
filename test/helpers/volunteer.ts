// Test helper: a raw NATS connection as one volunteer identity, for tests that speak the protocol
// directly (attackers, protocol checks). Every such connection goes through here, so the way a
// volunteer logs in (its credentials, its inbox) is defined once for all tests.
import { connect } from '@nats-io/transport-node'
import type { NatsConnection } from '@nats-io/nats-core'
import { inboxPrefixFor, type Identity } from '../../shared/index.js'

export interface VolunteerConnectionOptions {
  /** NATS client name, for the server's connection list. */
  name?: string
  /** Reconnect after a server restart (default false: fail fast). */
  reconnect?: boolean
}

/** Connects to `natsUrl` as the volunteer `identity`, with its own inbox prefix. */
export async function connectVolunteer(
  natsUrl: string,
  identity: Identity,
  opts: VolunteerConnectionOptions = {},
): Promise<NatsConnection> {
  return connect({
    servers: natsUrl,
    inboxPrefix: inboxPrefixFor(identity.id),
    ...(opts.name === undefined ? {} : { name: opts.name }),
    ...(opts.reconnect === true ? { maxReconnectAttempts: -1, reconnectTimeWait: 200 } : {}),
  })
}
