// Issues a volunteer's NATS credentials: a user JWT for the nkey the volunteer generated, signed with
// the Cohort account's key, whose permissions follow from the volunteer's id. A volunteer may ask the
// coordinators for work and data, talk to peers, and listen only to its own inbox, its own peer
// subject, the peers' announcement shards and the coordinators' wake-ups (in the volunteers' queue
// group only, so each wake-up reaches one volunteer). It announces on its own shard only, and hears
// provider lookups (wants) only in the providers' queue group, so each want reaches one holder and
// nobody hears every want. It may answer a request it received once, and nothing else.
import {
  ConfigError,
  inboxPrefixFor,
  announceSubject,
  PEER_ID_PATTERN,
  PROVIDER_QUEUE,
  subjectsFor,
  VOLUNTEER_NATS_LIMITS,
  WORK_AVAILABLE_QUEUE,
  type Subjects,
} from '../../shared/index.js'
import { encodeJwt, keyPairFromSeed, type NatsPermission } from './nats-jwt.js'

export interface VolunteerPermissions {
  pub: NatsPermission
  sub: NatsPermission
}

/** The subjects volunteer `peerId` may publish and subscribe to, under `subjects`' prefix. */
export function volunteerPermissions(subjects: Subjects, peerId: string): VolunteerPermissions {
  if (!PEER_ID_PATTERN.test(peerId)) throw new ConfigError('not a peer id')
  return {
    pub: {
      allow: [
        subjects.workRequest,
        subjects.resultSubmit,
        subjects.leaseRenew,
        subjects.leaseRelease,
        subjects.moduleGet,
        subjects.chunkGet,
        subjects.leaseClaim,
        // Its own shard only: one connection cannot announce identities of other shards.
        announceSubject(subjects, peerId),
        `${subjects.peerWant}.*`,
        `${subjects.peerInbox}.*`,
      ],
    },
    sub: {
      allow: [
        `${inboxPrefixFor(peerId)}.>`,
        `${subjects.peerInbox}.${peerId}`,
        // "<subject> <queue>": only in that queue group; a plain subscription to it is refused.
        `${subjects.workAvailable} ${WORK_AVAILABLE_QUEUE}`,
        `${subjects.peerAnnounce}.>`,
        `${subjects.peerWant}.* ${PROVIDER_QUEUE}`,
      ],
    },
  }
}

export interface VolunteerIssuerInit {
  /** Seed of the Cohort NATS account (`SA…`), shared by the coordinators of a deployment. */
  accountSeed: string
  /** NATS subject prefix of the deployment. */
  subjectPrefix: string
  /** How long a volunteer's credentials are valid. */
  ttlMs: number
  now?: () => number
}

export interface VolunteerCredentials {
  jwt: string
  /** Milliseconds since the epoch (a whole second: JWT times are seconds). */
  expiresAt: number
}

export interface VolunteerIssuer {
  /** The account the credentials belong to. */
  readonly accountPublicKey: string
  /** A user JWT for `natsKey` (the volunteer's public user nkey) with `peerId`'s permissions. */
  issue(peerId: string, natsKey: string): VolunteerCredentials
}

export function createVolunteerIssuer(init: VolunteerIssuerInit): VolunteerIssuer {
  const account = keyPairFromSeed(init.accountSeed, 'the NATS account seed', 'A')
  const subjects = subjectsFor(init.subjectPrefix)
  const now = init.now ?? Date.now
  return {
    accountPublicKey: account.getPublicKey(),
    issue(peerId, natsKey) {
      if (!/^U[A-Z2-7]{55}$/.test(natsKey)) throw new ConfigError('not a public user nkey')
      const issuedAt = Math.floor(now() / 1000)
      const expiresAt = issuedAt + Math.max(1, Math.floor(init.ttlMs / 1000))
      const jwt = encodeJwt(
        {
          subject: natsKey,
          name: peerId,
          issuedAt,
          expiresAt,
          nats: {
            type: 'user',
            version: 2,
            ...volunteerPermissions(subjects, peerId),
            resp: { max: 1, ttl: VOLUNTEER_NATS_LIMITS.responseTtlMs * 1_000_000 },
            subs: VOLUNTEER_NATS_LIMITS.subs,
            data: VOLUNTEER_NATS_LIMITS.dataBytes,
            payload: VOLUNTEER_NATS_LIMITS.payloadBytes,
            allowed_connection_types: ['STANDARD', 'WEBSOCKET'],
          },
        },
        account,
      )
      return { jwt, expiresAt: expiresAt * 1000 }
    },
  }
}
