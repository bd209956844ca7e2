// The peer overlay on NATS. Every worker (daemon or browser tab) listens on its own subject,
// `<prefix>.v1.peer.to.<its id>`, and announces itself (free capacity, content held) on its shard,
// `<prefix>.v1.peer.announce.<the first 16 bits of its key, one token each>`. It listens to one
// region of the shards, sized to hold about PEER_LIMITS.neighbours peers however large the overlay
// (sampler.ts), so what each peer spends on discovery does not grow with the overlay; who holds a
// content is found by provider lookups (providers.ts). An announcement counts only on its sender's
// own shard. Every message is a signed envelope: a receiver checks the signature,
// the sender it names, the addressee, the clock window and its replay cache before it acts; a reply
// counts only when the peer it was sent to signed it and it names the request's nonce, and replies go
// only to the requester's own inbox. Peers that forge are banned; peers that do not answer are set
// aside for a while. The announcement table is bounded. No `node:` imports: browsers run this too.
import { createInbox, type Msg, type NatsConnection, type Subscription } from '@nats-io/nats-core'
import {
  checkPeerMessage,
  checkWorkerSigned,
  decode,
  Emitter,
  encode,
  errorFields,
  inboxPrefixFor,
  isOwnInbox,
  LIMITS,
  open,
  parseEnvelope,
  announceSubject,
  parsePeerAnnounce,
  parsePeerMessage,
  PEER_LIMITS,
  PEER_MESSAGE_VERSION,
  peerShard,
  peerSubject,
  regionSubject,
  shardOfSubject,
  ProtocolError,
  randomId,
  seal,
  TimeoutError,
  type DistributiveOmit,
  type Identity,
  type Logger,
  type PeerAnnounce,
  type PeerMessage,
  type Subjects,
} from '../../shared/index.js'
import { createProviders, type LookupOptions, type LookupResult, type ProviderStats } from './providers.js'
import { createReplayCache, ReplayError } from './replay-cache.js'
import { createRegionSampler } from './sampler.js'

/** What a peer says about itself in announcements (the overlay adds the signature fields). */
export type PeerState = Omit<PeerAnnounce, 'type' | 'v' | 'worker' | 'at' | 'nonce' | 'leaving'>

/** A message body before the overlay signs and addresses it. */
export type Outgoing = DistributiveOmit<PeerMessage, 'v' | 'worker' | 'at' | 'nonce' | 'to' | 're'>

export interface PeerInfo {
  id: string
  state: PeerAnnounce
  seenAt: number
}

export interface PeerOverlayInit {
  nats: NatsConnection
  identity: Identity
  subjects: Subjects
  log: Logger
  /** What to announce; read at every announcement. */
  state(): PeerState
  /** Between announcements. Default 2000 ms; a peer unheard for 3 intervals (at least 5 s) is gone. */
  announceMs?: number
  /** Per request to a peer. Default 5000 ms. */
  requestTimeoutMs?: number
  /** Requests served at once; more are refused as busy. Default 32. */
  maxServing?: number
  /** Penalty points after which a peer is ignored. Default 3. */
  banAt?: number
  /** Peers kept in the announcement table; past it the least recently heard unproven peer goes. Default 256. */
  maxPeers?: number
  /** How long a peer that did not answer (or did not have what it announced) is set aside. Default 30000 ms. */
  slowForMs?: number
  /** Peer messages the replay cache remembers. Default 32768. */
  replayCacheEntries?: number
  /** Peers whose announcements this one aims to hear. Default PEER_LIMITS.neighbours. */
  neighbours?: number
}

export interface OverlayStats extends ProviderStats {
  announcesSent: number
  announcesHeard: number
  /** Messages that arrived on the announcement subscription (all of them: the discovery traffic). */
  discoveryIn: number
  /** Of those, the ones handled (heard, ignored or refused): equal to discoveryIn when nothing is pending. */
  discoveryHandled: number
  /** Bits of the region of shards listened to (0: all of them). */
  regionDepth: number
  /** Overlay size estimated from what this peer hears (0 before the first estimate). */
  sizeEstimate: number
  /**
   * Messages that did not decode, verify or match their sender/addressee/request, replays, and
   * messages from banned peers. Counted, never fatal, and never held against the signer.
   */
  refused: number
  /** Of those, messages seen before (or older than what the replay cache remembers). */
  replayed: number
  served: number
  /** Requests answered with `peer.error`: not served here, busy, or the handler refused them. */
  declined: number
  penalties: number
  /** Times a peer was set aside for not answering or not having what it announced. */
  demoted: number
  /** Peers dropped from the full announcement table. */
  evicted: number
  /** Peers in the announcement table now. */
  known: number
}

export type OverlayEvents = {
  /** A peer's announcement arrived (new or updated). */
  peer: [info: PeerInfo]
  /** A peer was penalised. */
  penalised: [peerId: string, reason: string, banned: boolean]
  /** A peer was set aside for a while (it did not answer, or did not have what it announced). */
  demoted: [peerId: string, reason: string]
  /** A message was refused (malformed, forged, misaddressed, from a banned peer). */
  refused: [reason: string]
}

/** Serve one kind of message; return the reply body, or undefined for none. */
export type PeerHandler = (msg: PeerMessage, from: string) => Promise<Outgoing | undefined>

export interface PeerOverlay extends Emitter<OverlayEvents> {
  readonly id: string
  readonly stats: OverlayStats
  /** The region of announcement shards listened to: the shards whose bits start with this ('' = all). */
  readonly region: string
  start(): Promise<void>
  /** Says goodbye (so peers forget this one at once) and stops listening. */
  stop(): Promise<void>
  /** Live peers (heard within 3 announce intervals, and at least 5 s), not banned or set aside, not this one. */
  peers(): PeerInfo[]
  handle(type: PeerMessage['type'], handler: PeerHandler): void
  /** Send a signed request to one peer; resolves with its signed, checked reply. */
  request(peerId: string, body: Outgoing, timeoutMs?: number): Promise<PeerMessage>
  /** Send a signed message to one peer without waiting for anything. */
  notify(peerId: string, body: Outgoing): Promise<void>
  /** Announce soon (coalesced): after the state changed in a way peers should hear about. */
  announceSoon(): void
  /**
   * One announce interval's work now: re-evaluate the region listened to when due, announce, and
   * listen for wants for what is held. The timer does this every interval.
   */
  tick(): Promise<void>
  /** Find holders of content `root` with a bounded number of messages (see providers.ts). */
  lookup(root: string, opts?: LookupOptions): Promise<LookupResult>
  /**
   * Count a misdeed that only the peer itself can commit (bad bytes or forged units under its own
   * signature); past the limit the peer is ignored for the rest of this session.
   */
  penalise(peerId: string, reason: string, points?: number): void
  isBanned(peerId: string): boolean
  /** Set a peer aside for a while (not a ban): it timed out, or lacked what it announced. */
  demote(peerId: string, reason: string): void
  isDemoted(peerId: string): boolean
  /** The peer did something useful (served good bytes, claimed units): kept first when the table is full. */
  vouch(peerId: string): void
}

/** A Map used as a bounded set ordered by insertion: the oldest key goes first. */
function boundedSet<V>(map: Map<string, V>, key: string, value: V, max: number): void {
  map.delete(key)
  map.set(key, value)
  while (map.size > max) {
    const oldest = map.keys().next()
    if (oldest.done === true) break
    map.delete(oldest.value)
  }
}

const MIN_ANNOUNCE_GAP_MS = 100

/** One announcement as it goes on the wire: `state` signed by `identity`, encoded. */
export async function sealAnnouncement(
  identity: Identity,
  state: PeerState,
  leaving = false,
): Promise<Uint8Array> {
  const payload: PeerAnnounce = {
    ...state,
    type: 'peer.announce',
    v: 1,
    worker: identity.id,
    at: Date.now(),
    nonce: randomId(),
    leaving,
  }
  return encode(await seal('peer.announce', payload, identity))
}

export function createPeerOverlay(init: PeerOverlayInit): PeerOverlay {
  const { nats, identity, subjects, log } = init
  const self = identity.id
  const announceMs = init.announceMs ?? 2_000
  const timeoutMs = init.requestTimeoutMs ?? 5_000
  const maxServing = init.maxServing ?? 32
  const banAt = init.banAt ?? 3
  const maxPeers = init.maxPeers ?? PEER_LIMITS.maxPeers
  const slowForMs = init.slowForMs ?? 30_000
  // A loaded machine or network delays announcements; a peer that stopped says so anyway.
  const goneAfterMs = Math.max(3 * announceMs, 5_000)
  /** Announcements by peer, least recently heard first. */
  const table = new Map<string, PeerInfo>()
  const points = new Map<string, number>()
  /** Peers set aside, until when. */
  const slow = new Map<string, number>()
  /** Peers that proved useful, kept first when the table is full. */
  const good = new Map<string, true>()
  /** Peers that said they leave, with that announcement's time: older announcements do not bring them back. */
  const left = new Map<string, number>()
  const replays = createReplayCache({
    maxEntries: init.replayCacheEntries ?? PEER_LIMITS.replayCacheEntries,
    windowMs: 2 * LIMITS.maxClockSkewMs,
  })
  const handlers = new Map<PeerMessage['type'], PeerHandler>()
  const stats: OverlayStats = {
    announcesSent: 0,
    announcesHeard: 0,
    refused: 0,
    replayed: 0,
    served: 0,
    declined: 0,
    penalties: 0,
    demoted: 0,
    evicted: 0,
    known: 0,
    discoveryIn: 0,
    discoveryHandled: 0,
    regionDepth: 0,
    sizeEstimate: 0,
    lookups: 0,
    wantsSent: 0,
    lookupReplies: 0,
    wantsServed: 0,
  }
  const sampler = createRegionSampler({
    target: init.neighbours ?? PEER_LIMITS.neighbours,
    maxDepth: PEER_LIMITS.shardBits,
  })
  let region: Subscription | undefined
  const emitter = new Emitter<OverlayEvents>()
  const subs: Subscription[] = []
  let timer: ReturnType<typeof setTimeout> | undefined
  let lastAnnounce = 0
  let lastTick = 0
  let serving = 0
  let started = false
  let stopped = false

  const sealFor = async (
    to: string,
    body: Outgoing,
    ids: { nonce?: string; re?: string } = {},
  ): Promise<Uint8Array> =>
    encode(
      await seal(
        'peer',
        {
          ...body,
          v: PEER_MESSAGE_VERSION,
          worker: self,
          at: Date.now(),
          nonce: ids.nonce ?? randomId(),
          to,
          ...(ids.re === undefined ? {} : { re: ids.re }),
        },
        identity,
      ),
    )

  /** Decode, verify and check a message addressed to this peer, once; throws on anything wrong. */
  const receive = async (data: Uint8Array): Promise<PeerMessage> => {
    const env = parseEnvelope(decode(data, PEER_LIMITS.maxMessageBytes), 'peer', PEER_LIMITS.maxMessageBytes)
    const msg = parsePeerMessage(await open(env))
    const now = Date.now()
    checkPeerMessage(msg, env.signer, self, now)
    replays.admit(msg.worker, msg.nonce, msg.at, now)
    return msg
  }

  const providers = createProviders(
    {
      nats,
      identity,
      subjects,
      log,
      receive,
      admit(want, signer) {
        const now = Date.now()
        checkWorkerSigned(want, signer, now)
        replays.admit(want.worker, want.nonce, want.at, now)
      },
      answer: (to, body, re) => sealFor(to, body, { re }),
      refuse,
      isBanned,
    },
    (root) => init.state().has.find((h) => h.root === root),
    stats,
  )

  const announce = async (leaving = false): Promise<void> => {
    if (nats.isClosed()) return
    lastAnnounce = Date.now()
    const state = init.state()
    if (!leaving) providers.serve(state.has)
    nats.publish(announceSubject(subjects, self), await sealAnnouncement(identity, state, leaving))
    stats.announcesSent++
  }

  /** Listen to the sampler's region (again, when it changed). */
  const listenRegion = (): void => {
    region?.unsubscribe()
    stats.regionDepth = sampler.prefix.length
    stats.sizeEstimate = sampler.estimate
    if (stopped || nats.isClosed()) return
    const subject = regionSubject(subjects, sampler.prefix)
    region = nats.subscribe(subject, {
      callback: (err, m) => {
        if (err) {
          log.warn('peer subscription error', { subject, ...errorFields(err) })
          return
        }
        stats.discoveryIn++
        onAnnounce(m.subject, m.data)
          .catch(refuse)
          .finally(() => stats.discoveryHandled++)
      },
    })
  }

  const tick = async (): Promise<void> => {
    // After the goodbye, nothing more is said.
    if (stopped) return
    lastTick = Date.now()
    if (sampler.tick()) listenRegion()
    stats.sizeEstimate = sampler.estimate
    await announce()
  }

  const schedule = (ms: number): void => {
    clearTimeout(timer)
    if (stopped) return
    timer = setTimeout(() => {
      timer = undefined
      // An early announcement (announceSoon) is not an interval: the sampler counts intervals.
      ;(Date.now() - lastTick >= 0.9 * announceMs ? tick() : announce())
        .catch((err: unknown) => log.debug('announce failed', errorFields(err)))
        .finally(() => schedule(announceMs))
    }, ms)
  }

  /** Room for one more peer: forget the gone, then the least recently heard peer not vouched for. */
  const makeRoom = (now: number): void => {
    if (table.size < maxPeers) return
    for (const [id, info] of table) if (now - info.seenAt > goneAfterMs) table.delete(id)
    while (table.size >= maxPeers) {
      let victim: string | undefined
      for (const id of table.keys())
        if (!good.has(id)) {
          victim = id
          break
        }
      victim ??= table.keys().next().value
      if (victim === undefined) break
      table.delete(victim)
      stats.evicted++
    }
  }

  const onAnnounce = async (subject: string, data: Uint8Array): Promise<void> => {
    const shard = shardOfSubject(subjects, subject)
    if (shard === undefined) throw new ProtocolError(`${subject} is not an announcement shard`)
    // Delivered before the region changed: no longer listened to, not worth a verification.
    if (!sampler.contains(shard)) return
    const env = parseEnvelope(
      decode(data, PEER_LIMITS.maxAnnounceBytes),
      'peer.announce',
      PEER_LIMITS.maxAnnounceBytes,
    )
    const state = parsePeerAnnounce(await open(env))
    checkWorkerSigned(state, env.signer, Date.now())
    if (peerShard(state.worker) !== shard)
      throw new ProtocolError(`${state.worker} announced on another shard than its own`)
    if (state.worker === self) return
    if (!state.leaving && sampler.heard(state.worker)) listenRegion()
    const leftAt = left.get(state.worker)
    if (leftAt !== undefined && leftAt >= state.at) return
    if (state.leaving) {
      table.delete(state.worker)
      boundedSet(left, state.worker, state.at, maxPeers)
      stats.known = table.size
      return
    }
    if (isBanned(state.worker)) return
    const prev = table.get(state.worker)
    // Announcements can overtake each other, or be replayed; keep the newest.
    if (prev !== undefined && prev.state.at >= state.at) return
    const now = Date.now()
    const info = { id: state.worker, state, seenAt: now }
    if (prev === undefined) makeRoom(now)
    // Re-inserted: the table's order is the order peers were last heard.
    table.delete(state.worker)
    table.set(state.worker, info)
    stats.known = table.size
    stats.announcesHeard++
    emitter.emit('peer', info)
  }

  const onMessage = async (m: Msg): Promise<void> => {
    let msg: PeerMessage
    try {
      msg = await receive(m.data)
    } catch (err) {
      refuse(err)
      return
    }
    // A reply that arrives as a request was recorded and sent here by someone: not acted upon.
    if (msg.re !== undefined) {
      refuse(new ProtocolError(`a reply from ${msg.worker} was sent as a request`))
      return
    }
    // Answers go to the requester's own inbox only, never to a subject it chose for someone else.
    const reply = async (body: Outgoing): Promise<void> => {
      if (isOwnInbox(m.reply, msg.worker)) m.respond(await sealFor(msg.worker, body, { re: msg.nonce }))
    }
    if (isBanned(msg.worker)) {
      refuse(new ProtocolError(`peer ${msg.worker} is banned`))
      // Say so, rather than leave it waiting for a timeout.
      await reply({ type: 'peer.error', code: 'refused', message: 'banned' })
      return
    }
    const handler = handlers.get(msg.type)
    if (handler === undefined) {
      stats.declined++
      await reply({ type: 'peer.error', code: 'refused', message: `${msg.type} is not served here` })
      return
    }
    if (serving >= maxServing) {
      stats.declined++
      await reply({ type: 'peer.error', code: 'busy', message: 'busy' })
      return
    }
    serving++
    try {
      const body = await handler(msg, msg.worker)
      stats.served++
      if (body !== undefined) await reply(body)
    } catch (err) {
      stats.declined++
      log.debug('peer request failed', { type: msg.type, ...errorFields(err) })
      await reply({
        type: 'peer.error',
        code: 'refused',
        message: (err as Error).message.slice(0, 400),
      }).catch(() => {})
    } finally {
      serving--
    }
  }

  const listen = (subject: string, fn: (m: Msg) => Promise<void>): Subscription =>
    nats.subscribe(subject, {
      callback: (err, m) => {
        if (err) {
          log.warn('peer subscription error', { subject, ...errorFields(err) })
          return
        }
        fn(m).catch(refuse)
      },
    })

  function refuse(err: unknown): void {
    stats.refused++
    if (err instanceof ReplayError) stats.replayed++
    log.debug('refused a peer message', errorFields(err))
    emitter.emit('refused', (err as Error).message)
  }

  function isBanned(peerId: string): boolean {
    return (points.get(peerId) ?? 0) >= banAt
  }

  function isDemoted(peerId: string): boolean {
    const until = slow.get(peerId)
    if (until === undefined) return false
    if (until > Date.now()) return true
    slow.delete(peerId)
    return false
  }

  /** Send `body` to `peerId` and take the first reply it signed for this request, within `ms`. */
  const ask = (peerId: string, body: Outgoing, ms: number): Promise<PeerMessage> => {
    const nonce = randomId()
    const inbox = createInbox(inboxPrefixFor(self))
    return new Promise<PeerMessage>((resolve, reject) => {
      let done = false
      const finish = (err: unknown, msg?: PeerMessage): void => {
        if (done) return
        done = true
        clearTimeout(timer)
        sub.unsubscribe()
        if (msg !== undefined) resolve(msg)
        else reject(err instanceof Error ? err : new ProtocolError(String(err)))
      }
      const sub = nats.subscribe(inbox, {
        callback: (err, m) => {
          if (err) return finish(err)
          // The server's "no responders": the peer is not listening (gone).
          if (m.headers?.code === 503)
            return finish(new TimeoutError(`peer ${peerId} is not listening for ${body.type}`))
          // Anything else that lands here is checked; a bad reply is refused and the wait goes on.
          receive(m.data)
            .then((reply) => {
              if (reply.worker !== peerId)
                throw new ProtocolError(`reply signed by ${reply.worker}, not by ${peerId}`)
              if (reply.re !== nonce) throw new ProtocolError(`reply from ${peerId} answers another request`)
              finish(undefined, reply)
            })
            .catch(refuse)
        },
      })
      const timer = setTimeout(
        () => finish(new TimeoutError(`peer ${peerId} did not answer ${body.type} within ${ms} ms`)),
        ms,
      )
      sealFor(peerId, body, { nonce })
        .then((data) => nats.publish(peerSubject(subjects, peerId), data, { reply: inbox }))
        .catch(finish)
    })
  }

  const overlay = Object.assign(emitter, {
    id: self,
    stats,
    async start(): Promise<void> {
      started = true
      subs.push(listen(peerSubject(subjects, self), onMessage))
      listenRegion()
      await nats.flush()
      lastTick = Date.now()
      await announce()
      schedule(announceMs)
    },
    async stop(): Promise<void> {
      if (stopped) return
      stopped = true
      clearTimeout(timer)
      if (started) await announce(true).catch(() => {})
      for (const s of subs) s.unsubscribe()
      subs.length = 0
      region?.unsubscribe()
      region = undefined
      providers.stop()
    },
    peers(): PeerInfo[] {
      const now = Date.now()
      const out: PeerInfo[] = []
      for (const [id, info] of table) {
        if (now - info.seenAt > goneAfterMs) table.delete(id)
        else if (!isBanned(id) && !isDemoted(id)) out.push(info)
      }
      stats.known = table.size
      return out
    },
    handle(type: PeerMessage['type'], handler: PeerHandler): void {
      handlers.set(type, handler)
    },
    async request(peerId: string, body: Outgoing, ms = timeoutMs): Promise<PeerMessage> {
      if (isBanned(peerId)) throw new ProtocolError(`peer ${peerId} is banned`)
      return ask(peerId, body, ms)
    },
    async notify(peerId: string, body: Outgoing): Promise<void> {
      nats.publish(peerSubject(subjects, peerId), await sealFor(peerId, body))
    },
    announceSoon(): void {
      if (stopped || !started) return
      schedule(Math.max(0, lastAnnounce + MIN_ANNOUNCE_GAP_MS - Date.now()))
    },
    tick,
    lookup: (root: string, opts?: LookupOptions): Promise<LookupResult> => providers.lookup(root, opts),
    penalise(peerId: string, reason: string, p = 1): void {
      const total = (points.get(peerId) ?? 0) + p
      points.set(peerId, total)
      stats.penalties++
      const banned = total >= banAt
      if (banned) table.delete(peerId)
      stats.known = table.size
      log.warn('peer penalised', { peer: peerId, reason, banned })
      emitter.emit('penalised', peerId, reason, banned)
    },
    isBanned,
    demote(peerId: string, reason: string): void {
      if (isDemoted(peerId)) return
      const now = Date.now()
      for (const [id, until] of slow) if (until <= now) slow.delete(id)
      boundedSet(slow, peerId, now + slowForMs, 4 * maxPeers)
      good.delete(peerId)
      stats.demoted++
      log.info('peer set aside', { peer: peerId, reason, forMs: slowForMs })
      emitter.emit('demoted', peerId, reason)
    },
    isDemoted,
    vouch(peerId: string): void {
      if (!good.has(peerId)) boundedSet(good, peerId, true, maxPeers)
    },
  })
  // A getter (Object.assign would copy its value once).
  return Object.defineProperty(overlay, 'region', {
    get: () => sampler.prefix,
    enumerable: true,
  }) as typeof overlay & {
    readonly region: string
  }
}
