// The peer overlay on NATS. Every worker (daemon or browser tab) listens on its own subject,
// `<prefix>.v1.peer.to.<its id>`, and announces itself (free capacity, content held) on
// `<prefix>.v1.peer.announce`. Every message is a signed envelope: a receiver checks the signature,
// the sender it names, the addressee and the clock window before it acts, and a reply counts only
// when the peer it was sent to signed it. Peers that misbehave are penalised and, past a limit,
// ignored. No `node:` imports: browsers run this too.
import type { Msg, NatsConnection, Subscription } from '@nats-io/nats-core'
import {
  checkPeerMessage,
  checkWorkerSigned,
  decode,
  Emitter,
  encode,
  errorFields,
  open,
  parseEnvelope,
  parsePeerAnnounce,
  parsePeerMessage,
  PEER_LIMITS,
  peerSubject,
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

/** What a peer says about itself in announcements (the overlay adds the signature fields). */
export type PeerState = Omit<PeerAnnounce, 'type' | 'v' | 'worker' | 'at' | 'nonce' | 'leaving'>

/** A message body before the overlay signs and addresses it. */
export type Outgoing = DistributiveOmit<PeerMessage, 'v' | 'worker' | 'at' | 'nonce' | 'to'>

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
}

export interface OverlayStats {
  announcesSent: number
  announcesHeard: number
  /** Messages that did not decode, verify or match their sender/addressee; or came from banned peers. */
  refused: number
  served: number
  penalties: number
}

export type OverlayEvents = {
  /** A peer's announcement arrived (new or updated). */
  peer: [info: PeerInfo]
  /** A peer was penalised. */
  penalised: [peerId: string, reason: string, banned: boolean]
  /** A message was refused (malformed, forged, misaddressed, from a banned peer). */
  refused: [reason: string]
}

/** Serve one kind of message; return the reply body, or undefined for none. */
export type PeerHandler = (msg: PeerMessage, from: string) => Promise<Outgoing | undefined>

export interface PeerOverlay extends Emitter<OverlayEvents> {
  readonly id: string
  readonly stats: OverlayStats
  start(): Promise<void>
  /** Says goodbye (so peers forget this one at once) and stops listening. */
  stop(): Promise<void>
  /** Live peers (heard within 3 announce intervals, and at least 5 s), not banned, not this one. */
  peers(): PeerInfo[]
  handle(type: PeerMessage['type'], handler: PeerHandler): void
  /** Send a signed request to one peer; resolves with its signed, checked reply. */
  request(peerId: string, body: Outgoing, timeoutMs?: number): Promise<PeerMessage>
  /** Send a signed message to one peer without waiting for anything. */
  notify(peerId: string, body: Outgoing): Promise<void>
  /** Announce soon (coalesced): after the state changed in a way peers should hear about. */
  announceSoon(): void
  /** Count a misdeed; past the limit the peer is ignored for the rest of this session. */
  penalise(peerId: string, reason: string, points?: number): void
  isBanned(peerId: string): boolean
}

const MIN_ANNOUNCE_GAP_MS = 100

export function createPeerOverlay(init: PeerOverlayInit): PeerOverlay {
  const { nats, identity, subjects, log } = init
  const self = identity.id
  const announceMs = init.announceMs ?? 2_000
  const timeoutMs = init.requestTimeoutMs ?? 5_000
  const maxServing = init.maxServing ?? 32
  const banAt = init.banAt ?? 3
  // A loaded machine or network delays announcements; a peer that stopped says so anyway.
  const goneAfterMs = Math.max(3 * announceMs, 5_000)
  const table = new Map<string, PeerInfo>()
  const points = new Map<string, number>()
  const handlers = new Map<PeerMessage['type'], PeerHandler>()
  const stats: OverlayStats = { announcesSent: 0, announcesHeard: 0, refused: 0, served: 0, penalties: 0 }
  const emitter = new Emitter<OverlayEvents>()
  const subs: Subscription[] = []
  let timer: ReturnType<typeof setTimeout> | undefined
  let lastAnnounce = 0
  let serving = 0
  let started = false
  let stopped = false

  const sealFor = async (to: string, body: Outgoing): Promise<Uint8Array> =>
    encode(
      await seal('peer', { ...body, v: 1, worker: self, at: Date.now(), nonce: randomId(), to }, identity),
    )

  /** Decode, verify and check a message addressed to this peer; throws on anything wrong. */
  const receive = async (data: Uint8Array): Promise<PeerMessage> => {
    const env = parseEnvelope(decode(data, PEER_LIMITS.maxMessageBytes), 'peer', PEER_LIMITS.maxMessageBytes)
    const msg = parsePeerMessage(await open(env))
    checkPeerMessage(msg, env.signer, self, Date.now())
    return msg
  }

  const announce = async (leaving = false): Promise<void> => {
    if (nats.isClosed()) return
    lastAnnounce = Date.now()
    const payload: PeerAnnounce = {
      ...init.state(),
      type: 'peer.announce',
      v: 1,
      worker: self,
      at: Date.now(),
      nonce: randomId(),
      leaving,
    }
    nats.publish(subjects.peerAnnounce, encode(await seal('peer.announce', payload, identity)))
    stats.announcesSent++
  }

  const schedule = (ms: number): void => {
    clearTimeout(timer)
    if (stopped) return
    timer = setTimeout(() => {
      timer = undefined
      announce()
        .catch((err: unknown) => log.debug('announce failed', errorFields(err)))
        .finally(() => schedule(announceMs))
    }, ms)
  }

  const onAnnounce = async (data: Uint8Array): Promise<void> => {
    const env = parseEnvelope(decode(data, 64 * 1024), 'peer.announce', 64 * 1024)
    const state = parsePeerAnnounce(await open(env))
    checkWorkerSigned(state, env.signer, Date.now())
    if (state.worker === self) return
    if (state.leaving) {
      table.delete(state.worker)
      return
    }
    if (isBanned(state.worker)) return
    const prev = table.get(state.worker)
    // Announcements can overtake each other; keep the newest.
    if (prev !== undefined && prev.state.at > state.at) return
    const info = { id: state.worker, state, seenAt: Date.now() }
    table.set(state.worker, info)
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
    const reply = async (body: Outgoing): Promise<void> => {
      if (m.reply) m.respond(await sealFor(msg.worker, body))
    }
    if (isBanned(msg.worker)) {
      refuse(new ProtocolError(`peer ${msg.worker} is banned`))
      // Say so, rather than leave it waiting for a timeout.
      await reply({ type: 'peer.error', message: 'banned' })
      return
    }
    const handler = handlers.get(msg.type)
    if (handler === undefined) {
      await reply({ type: 'peer.error', message: `${msg.type} is not served here` })
      return
    }
    if (serving >= maxServing) {
      await reply({ type: 'peer.error', message: 'busy' })
      return
    }
    serving++
    try {
      const body = await handler(msg, msg.worker)
      stats.served++
      if (body !== undefined) await reply(body)
    } catch (err) {
      log.debug('peer request failed', { type: msg.type, ...errorFields(err) })
      await reply({ type: 'peer.error', message: (err as Error).message.slice(0, 400) }).catch(() => {})
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
    log.debug('refused a peer message', errorFields(err))
    emitter.emit('refused', (err as Error).message)
  }

  function isBanned(peerId: string): boolean {
    return (points.get(peerId) ?? 0) >= banAt
  }

  const overlay = Object.assign(emitter, {
    id: self,
    stats,
    async start(): Promise<void> {
      started = true
      subs.push(
        listen(peerSubject(subjects, self), onMessage),
        listen(subjects.peerAnnounce, (m) => onAnnounce(m.data)),
      )
      await nats.flush()
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
    },
    peers(): PeerInfo[] {
      const now = Date.now()
      const out: PeerInfo[] = []
      for (const [id, info] of table) {
        if (now - info.seenAt > goneAfterMs) table.delete(id)
        else if (!isBanned(id)) out.push(info)
      }
      return out
    },
    handle(type: PeerMessage['type'], handler: PeerHandler): void {
      handlers.set(type, handler)
    },
    async request(peerId: string, body: Outgoing, ms = timeoutMs): Promise<PeerMessage> {
      if (isBanned(peerId)) throw new ProtocolError(`peer ${peerId} is banned`)
      let reply: Msg
      try {
        reply = await nats.request(peerSubject(subjects, peerId), await sealFor(peerId, body), {
          timeout: ms,
        })
      } catch (err) {
        if (/timeout/i.test(String(err))) throw new TimeoutError(`peer ${peerId} did not answer ${body.type}`)
        throw err
      }
      const msg = await receive(reply.data)
      if (msg.worker !== peerId) throw new ProtocolError(`reply signed by ${msg.worker}, not by ${peerId}`)
      return msg
    },
    async notify(peerId: string, body: Outgoing): Promise<void> {
      nats.publish(peerSubject(subjects, peerId), await sealFor(peerId, body))
    },
    announceSoon(): void {
      if (stopped || !started) return
      schedule(Math.max(0, lastAnnounce + MIN_ANNOUNCE_GAP_MS - Date.now()))
    },
    penalise(peerId: string, reason: string, p = 1): void {
      const total = (points.get(peerId) ?? 0) + p
      points.set(peerId, total)
      stats.penalties++
      const banned = total >= banAt
      if (banned) table.delete(peerId)
      log.warn('peer penalised', { peer: peerId, reason, banned })
      emitter.emit('penalised', peerId, reason, banned)
    },
    isBanned,
  })
  return overlay
}
