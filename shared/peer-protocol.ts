// The peer overlay's messages, and the two coordinator requests peers need (chunk.get for content
// no peer has, lease.claim to take over a lease a peer transferred). Every message between peers is
// a signed envelope (kind `peer`, or `peer.announce` for the broadcast) naming its sender and its
// addressee; a receiver checks both, and the clock window, before it acts on anything. A reply names
// the nonce of the request it answers (`re`), so a recorded reply cannot answer another request.
import { toBase64Url } from './bytes.js'
import { MAX_CONTENT_CHUNKS, MAX_MANIFEST_BYTES } from './content.js'
import { DIGEST_HEX } from './digest.js'
import { ProtocolError } from './errors.js'
import {
  ID_PATTERN,
  JOB_KIND_PATTERN,
  LIMITS,
  PEER_ID_PATTERN,
  workerSigned,
  type Subjects,
  type WorkerSigned,
} from './protocol.js'
import {
  arrayField,
  bytesField,
  expectRecord,
  intField,
  literal,
  stringField,
  stringList,
  type Rec,
} from './schema.js'
import { parseEnvelope, type SignedEnvelope } from './signing.js'
import { parseUnitEnvelope, type UnitEnvelope } from './unit-batch.js'

export const PEER_LIMITS = {
  /** Content roots one announcement may list. */
  maxHave: 32,
  /** Units moved in one handoff or steal. */
  maxTransfer: 16,
  /** Largest chunk or manifest payload. */
  maxChunkPayload: MAX_MANIFEST_BYTES,
  /** How long a lease transfer may be claimed after it was signed. */
  transferTtlMs: 15_000,
  /** Largest peer message (a handoff of maxTransfer units). */
  maxMessageBytes: 4 * 1024 * 1024,
  /** Largest announcement. */
  maxAnnounceBytes: 64 * 1024,
  /** Peers a worker keeps in its announcement table (each at most maxHave contents). */
  maxPeers: 256,
  /** Peer messages remembered by the replay cache (each for the clock window). */
  replayCacheEntries: 32_768,
  /**
   * Peers whose announcements a peer aims to hear: it listens to a region of the announcement shards
   * holding about this many peers, whatever the size of the overlay.
   */
  neighbours: 32,
  /** Bits of a peer's announcement shard (one subject token each): 65,536 shards at most. */
  shardBits: 16,
  /** Wants one provider lookup sends at most (each answered by at most one holder). */
  lookupWants: 16,
  /** Largest want. */
  maxWantBytes: 1024,
} as const

/** The queue group holders answer wants in: NATS hands each want to one holder of the content. */
export const PROVIDER_QUEUE = 'cohort-providers'

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

/**
 * A peer's announcement shard: the first `PEER_LIMITS.shardBits` bits of its public key (uniformly
 * spread), as a string of 0s and 1s.
 */
export function peerShard(peerId: string): string {
  if (!PEER_ID_PATTERN.test(peerId)) throw new ProtocolError('not a peer id')
  let bits = ''
  for (let i = 0; bits.length < PEER_LIMITS.shardBits; i++)
    bits += B64URL.indexOf(peerId[i] as string)
      .toString(2)
      .padStart(6, '0')
  return bits.slice(0, PEER_LIMITS.shardBits)
}

/** The subject a peer announces on: its shard's bits, one token each. */
export function announceSubject(subjects: Subjects, peerId: string): string {
  return `${subjects.peerAnnounce}.${peerShard(peerId).split('').join('.')}`
}

/** The subject (with wildcard) that covers every shard whose bits start with `prefix` ('' = all). */
export function regionSubject(subjects: Subjects, prefix: string): string {
  if (!/^[01]*$/.test(prefix) || prefix.length > PEER_LIMITS.shardBits)
    throw new ProtocolError('a region is a prefix of shard bits')
  const tokens = prefix.split('').filter((b) => b !== '')
  if (tokens.length === PEER_LIMITS.shardBits) return `${subjects.peerAnnounce}.${tokens.join('.')}`
  return [subjects.peerAnnounce, ...tokens, '>'].join('.')
}

/** The shard an announcement subject names, or undefined when it is not one. */
export function shardOfSubject(subjects: Subjects, subject: string): string | undefined {
  const head = `${subjects.peerAnnounce}.`
  if (!subject.startsWith(head)) return undefined
  const tokens = subject.slice(head.length).split('.')
  if (tokens.length !== PEER_LIMITS.shardBits || !tokens.every((b) => b === '0' || b === '1'))
    return undefined
  return tokens.join('')
}

/** The subject a lookup for the holders of content `root` goes to. */
export function wantSubject(subjects: Subjects, root: string): string {
  if (!DIGEST_HEX.test(root)) throw new ProtocolError('not a content root')
  return `${subjects.peerWant}.${root}`
}

/** Version of the messages between peers (`peer` envelopes); 2 added `re` and proven handoff results. */
export const PEER_MESSAGE_VERSION = 2

/** The subject a peer listens on, derived from its public key. */
export function peerSubject(subjects: Subjects, peerId: string): string {
  if (!PEER_ID_PATTERN.test(peerId)) throw new ProtocolError('not a peer id')
  return `${subjects.peerInbox}.${peerId}`
}

// ---- presence --------------------------------------------------------------------------------

/** The chunks of one content a peer holds (it holds the manifest of every root it lists). */
export interface HaveEntry {
  root: string
  /** Bitfield, one bit per chunk (see Bitfield). */
  bits: Uint8Array
}

export interface PeerAnnounce extends WorkerSigned {
  type: 'peer.announce'
  v: 1
  threads: number
  running: number
  buffered: number
  /** Units it would take from a peer now. */
  free: number
  accepts: string[]
  has: HaveEntry[]
  /** Sent once when the peer stops: forget it. */
  leaving: boolean
}

export function parsePeerAnnounce(value: unknown): PeerAnnounce {
  const r = expectRecord(value, 'peer.announce')
  literal(r, 'type', 'peer.announce')
  literal(r, 'v', 1)
  return {
    type: 'peer.announce',
    v: 1,
    ...workerSigned(r),
    threads: intField(r, 'threads', 0, 4096),
    running: intField(r, 'running', 0, 4096),
    buffered: intField(r, 'buffered', 0, 65536),
    free: intField(r, 'free', 0, 4096),
    accepts: stringList(r, 'accepts', 64, 40, JOB_KIND_PATTERN),
    has: arrayField(r, 'has', PEER_LIMITS.maxHave).map((h, i) => {
      const e = expectRecord(h, `has[${i}]`)
      return {
        root: stringField(e, 'root', 64, DIGEST_HEX),
        bits: bytesField(e, 'bits', MAX_CONTENT_CHUNKS / 8),
      }
    }),
    leaving: r['leaving'] === true,
  }
}

/**
 * "Who holds content `root`?" (envelope kind `peer.want`), sent to `wantSubject(root)` with a reply
 * subject in the sender's own inbox; the holder NATS hands it to answers with a `peer.have` (or a
 * `peer.error`) addressed to the sender and naming this want's nonce.
 */
export interface PeerWant extends WorkerSigned {
  type: 'peer.want'
  v: 1
  root: string
}

export function parsePeerWant(value: unknown): PeerWant {
  const r = expectRecord(value, 'peer.want')
  literal(r, 'type', 'peer.want')
  literal(r, 'v', 1)
  return { type: 'peer.want', v: 1, ...workerSigned(r), root: stringField(r, 'root', 64, DIGEST_HEX) }
}

// ---- lease transfer (giver -> receiver -> coordinator) ------------------------------------------

/** Signed by the peer that holds the leases: "I give these replicas to `to`". */
export interface LeaseTransfer extends WorkerSigned {
  type: 'lease.transfer'
  v: 1
  to: string
  replicaIds: string[]
  /** After this the transfer may not be claimed (the giver may take the units back). */
  expiresAt: number
}

export function parseLeaseTransfer(value: unknown): LeaseTransfer {
  const r = expectRecord(value, 'lease.transfer')
  literal(r, 'type', 'lease.transfer')
  literal(r, 'v', 1)
  return {
    type: 'lease.transfer',
    v: 1,
    ...workerSigned(r),
    to: stringField(r, 'to', 43, PEER_ID_PATTERN),
    replicaIds: stringList(r, 'replicaIds', PEER_LIMITS.maxTransfer, 96, ID_PATTERN),
    expiresAt: intField(r, 'expiresAt', 0, Number.MAX_SAFE_INTEGER),
  }
}

/** Sent by the receiver to the coordinators, with the giver's transfer. */
export interface LeaseClaim extends WorkerSigned {
  type: 'lease.claim'
  v: 1
  transfer: SignedEnvelope
}

export function parseLeaseClaim(value: unknown): LeaseClaim {
  const r = expectRecord(value, 'lease.claim')
  literal(r, 'type', 'lease.claim')
  literal(r, 'v', 1)
  return {
    type: 'lease.claim',
    v: 1,
    ...workerSigned(r),
    transfer: parseEnvelope(r['transfer'], 'lease.transfer', 16 * 1024),
  }
}

/**
 * The coordinator's answer to a claim: the replicas now leased to the claimant, re-signed for it,
 * and those it could not take (it holds or computed another replica of the unit, or the giver no
 * longer held the lease): the first kind go back to the queue at once.
 */
export interface LeaseClaimed {
  type: 'lease.claimed'
  v: 1
  units: UnitEnvelope[]
  refused: string[]
}

export function parseLeaseClaimed(value: unknown): LeaseClaimed {
  const r = expectRecord(value, 'lease.claimed')
  literal(r, 'type', 'lease.claimed')
  literal(r, 'v', 1)
  return {
    type: 'lease.claimed',
    v: 1,
    units: arrayField(r, 'units', PEER_LIMITS.maxTransfer).map((u) =>
      parseUnitEnvelope(u, LIMITS.maxUnitBytes),
    ),
    refused: stringList(r, 'refused', PEER_LIMITS.maxTransfer, 96, ID_PATTERN),
  }
}

// ---- content --------------------------------------------------------------------------------

/**
 * Ask a coordinator for a chunk or a manifest by SHA-256 (signed, kind `chunk.get`). It is served
 * only for a lease the worker holds whose unit reads the content `root` (a dataset, or a module's
 * chunked form), and only when `hash` is `root` itself (the manifest) or a chunk that manifest lists.
 */
export interface ChunkGet extends WorkerSigned {
  type: 'chunk.get'
  v: 1
  hash: string
  /** The content the chunk belongs to: the root of its manifest (equal to `hash` for the manifest). */
  root: string
  /** A replica the worker holds a lease on whose unit needs that content. */
  replicaId: string
}

export function parseChunkGet(value: unknown): ChunkGet {
  const r = expectRecord(value, 'chunk.get')
  literal(r, 'type', 'chunk.get')
  literal(r, 'v', 1)
  return {
    type: 'chunk.get',
    v: 1,
    ...workerSigned(r),
    hash: stringField(r, 'hash', 64, DIGEST_HEX),
    root: stringField(r, 'root', 64, DIGEST_HEX),
    replicaId: stringField(r, 'replicaId', 96, ID_PATTERN),
  }
}

/** The bytes named by `hash`; the requester hashes them before anything else. */
export interface ChunkReply {
  type: 'chunk'
  v: 1
  hash: string
  bytes: Uint8Array
}

export function parseChunkReply(value: unknown): ChunkReply {
  const r = expectRecord(value, 'chunk')
  literal(r, 'type', 'chunk')
  literal(r, 'v', 1)
  return {
    type: 'chunk',
    v: 1,
    hash: stringField(r, 'hash', 64, DIGEST_HEX),
    bytes: bytesField(r, 'bytes', PEER_LIMITS.maxChunkPayload),
  }
}

// ---- peer-to-peer messages (envelope kind `peer`) ----------------------------------------------

interface ToPeer extends WorkerSigned {
  v: typeof PEER_MESSAGE_VERSION
  /** The addressee: a peer refuses a message addressed to another. */
  to: string
  /**
   * On a reply, and only there: the nonce of the request it answers. A requester takes no reply
   * without it, and a peer takes no request with it (a recorded reply sent as a request).
   */
  re?: string
}

/**
 * An idle peer asks a busy one for buffered units. The victim chooses which (the thief has no say:
 * it could otherwise pick the units it wants to compute); the coordinator refuses to move a replica
 * of a unit the thief holds, held or computed.
 */
export interface StealRequest extends ToPeer {
  type: 'steal'
  want: number
  accepts: string[]
}

/** Units moved to the addressee: a giver's handoff request, or a victim's answer to a steal. */
export interface HandoffMessage extends ToPeer {
  type: 'handoff'
  /** Absent when nothing is given. */
  transfer?: SignedEnvelope
  /** The coordinator-signed units, addressed to the giver; the receiver verifies them. */
  units: UnitEnvelope[]
}

/**
 * The receiver's word on what it claimed (reply to a handoff, or a notice after a steal). The giver
 * believes only `units`: the replicas the coordinator re-signed for the receiver at the claim, which
 * no one else can produce. `claimed` and `refused` are informative.
 */
export interface HandoffResult extends ToPeer {
  type: 'handoff.result'
  /** The nonce of the lease transfer this reports on. */
  transfer: string
  claimed: string[]
  refused: string[]
  /** The coordinator's units for the receiver, as the claim returned them: the proof of the move. */
  units: UnitEnvelope[]
}

export interface PeerChunkGet extends ToPeer {
  type: 'chunk.get'
  hash: string
}

export interface PeerChunk extends ToPeer {
  type: 'chunk'
  hash: string
  bytes: Uint8Array
}

/** A provider record: the sender holds these chunks of `root` (the answer to a want). */
export interface PeerHave extends ToPeer {
  type: 'peer.have'
  root: string
  bits: Uint8Array
}

/** Why a request was not served: too many at once, content not held here, or anything else. */
export type PeerRefusalCode = 'busy' | 'missing' | 'refused'

/** A request the peer would not or could not serve. */
export interface PeerRefusal extends ToPeer {
  type: 'peer.error'
  /** Absent: `refused`. */
  code?: PeerRefusalCode
  message: string
}

const REFUSAL_CODES: ReadonlySet<string> = new Set<PeerRefusalCode>(['busy', 'missing', 'refused'])

export type PeerMessage =
  StealRequest | HandoffMessage | HandoffResult | PeerChunkGet | PeerChunk | PeerHave | PeerRefusal

function toPeer(r: Rec): ToPeer {
  literal(r, 'v', PEER_MESSAGE_VERSION)
  return {
    v: PEER_MESSAGE_VERSION,
    ...workerSigned(r),
    to: stringField(r, 'to', 43, PEER_ID_PATTERN),
    ...(r['re'] === undefined ? {} : { re: stringField(r, 're', 64) }),
  }
}

export function parsePeerMessage(value: unknown): PeerMessage {
  const r = expectRecord(value, 'peer message')
  const base = toPeer(r)
  switch (r['type']) {
    case 'steal':
      return {
        ...base,
        type: 'steal',
        want: intField(r, 'want', 1, PEER_LIMITS.maxTransfer),
        accepts: stringList(r, 'accepts', 64, 40, JOB_KIND_PATTERN),
      }
    case 'handoff':
      return {
        ...base,
        type: 'handoff',
        ...(r['transfer'] === undefined
          ? {}
          : { transfer: parseEnvelope(r['transfer'], 'lease.transfer', 16 * 1024) }),
        units: arrayField(r, 'units', PEER_LIMITS.maxTransfer).map((u) =>
          parseUnitEnvelope(u, LIMITS.maxUnitBytes),
        ),
      }
    case 'handoff.result':
      return {
        ...base,
        type: 'handoff.result',
        transfer: stringField(r, 'transfer', 64),
        claimed: stringList(r, 'claimed', PEER_LIMITS.maxTransfer, 96, ID_PATTERN),
        refused: stringList(r, 'refused', PEER_LIMITS.maxTransfer, 96, ID_PATTERN),
        units: arrayField(r, 'units', PEER_LIMITS.maxTransfer).map((u) =>
          parseUnitEnvelope(u, LIMITS.maxUnitBytes),
        ),
      }
    case 'chunk.get':
      return { ...base, type: 'chunk.get', hash: stringField(r, 'hash', 64, DIGEST_HEX) }
    case 'chunk':
      return {
        ...base,
        type: 'chunk',
        hash: stringField(r, 'hash', 64, DIGEST_HEX),
        bytes: bytesField(r, 'bytes', PEER_LIMITS.maxChunkPayload),
      }
    case 'peer.have':
      return {
        ...base,
        type: 'peer.have',
        root: stringField(r, 'root', 64, DIGEST_HEX),
        bits: bytesField(r, 'bits', MAX_CONTENT_CHUNKS / 8),
      }
    case 'peer.error': {
      const code = r['code']
      if (code !== undefined && (typeof code !== 'string' || !REFUSAL_CODES.has(code)))
        throw new ProtocolError('code must be busy, missing or refused')
      return {
        ...base,
        type: 'peer.error',
        ...(code === undefined ? {} : { code: code as PeerRefusalCode }),
        message: stringField(r, 'message', 500),
      }
    }
    default:
      throw new ProtocolError(
        'type must be steal, handoff, handoff.result, chunk.get, chunk, peer.have or peer.error',
      )
  }
}

/** A peer message must come from the signer it names and be addressed to `self`. */
export function checkPeerMessage(m: ToPeer, signer: Uint8Array, self: string, now: number): void {
  if (m.worker !== toBase64Url(signer)) throw new ProtocolError('worker does not match the envelope signer')
  if (m.to !== self) throw new ProtocolError('message is addressed to another peer')
  if (Math.abs(now - m.at) > LIMITS.maxClockSkewMs)
    throw new ProtocolError('at is too far from the current time')
}

/** `Omit` applied to each member of a union (so the discriminant still narrows). */
export type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never
