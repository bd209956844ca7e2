// Provider lookups: who holds a content, without anyone announcing it to everyone. A peer holding a
// content (even in part) listens on `wantSubject(root)` in the providers' queue group, so NATS hands
// each want for that root to one holder, picked at random. A lookup sends up to `wants` signed wants
// from one reply inbox of the asker's own and takes at most one answer per want (the subscription
// ends after `wants` messages): a `peer.have` with the holder's bitfield, a refusal, or the server's
// "no responders" when nobody holds the content. A lookup therefore costs at most 2 × wants messages
// whatever the size of the overlay, and finds distinct holders at random. Wants are signed, checked
// (clock window, replay cache, subject, reply inbox) before anything is answered; answers must be
// signed by their sender, addressed to the asker and name one of its wants, each want once.
import { createInbox, type Msg, type NatsConnection, type Subscription } from '@nats-io/nats-core'
import {
  decode,
  encode,
  errorFields,
  inboxPrefixFor,
  isOwnInbox,
  open,
  parseEnvelope,
  parsePeerWant,
  PEER_LIMITS,
  PROVIDER_QUEUE,
  ProtocolError,
  randomId,
  seal,
  wantSubject,
  type HaveEntry,
  type Identity,
  type Logger,
  type PeerMessage,
  type PeerWant,
  type Subjects,
} from '../../shared/index.js'

/** A peer that holds chunks of a content, as it answered a lookup. */
export interface Provider {
  id: string
  root: string
  bits: Uint8Array
  /** When the answer arrived. */
  at: number
}

export interface LookupResult {
  /** Distinct holders found (not this peer). */
  providers: Provider[]
  /** Wants sent. */
  sent: number
  /** Messages that came back (answers, refusals, "no responders", refused forgeries). */
  received: number
}

export interface LookupOptions {
  /** Wants to send. Default 8, at most PEER_LIMITS.lookupWants. */
  wants?: number
  /** How long to wait for the answers. Default 1000 ms. */
  timeoutMs?: number
}

export interface ProviderStats {
  lookups: number
  wantsSent: number
  /** Messages received by lookups. */
  lookupReplies: number
  /** Wants answered here (with a bitfield or a refusal). */
  wantsServed: number
}

/** What the overlay lends: its checks, its signing and its bans. */
export interface ProviderWire {
  nats: NatsConnection
  identity: Identity
  subjects: Subjects
  log: Logger
  /** Decode, verify and check a message addressed to this peer (replay cache included). */
  receive(data: Uint8Array): Promise<PeerMessage>
  /** Check a want's signer and clock, and remember it in the replay cache; throws when refused. */
  admit(want: PeerWant, signer: Uint8Array): void
  /** A signed answer to `to`'s request `re`. */
  answer(
    to: string,
    body: { type: 'peer.have'; root: string; bits: Uint8Array } | PeerRefusalBody,
    re: string,
  ): Promise<Uint8Array>
  refuse(err: unknown): void
  isBanned(peerId: string): boolean
}

type PeerRefusalBody = { type: 'peer.error'; code: 'missing' | 'refused'; message: string }

export interface Providers {
  readonly stats: ProviderStats
  lookup(root: string, opts?: LookupOptions): Promise<LookupResult>
  /** Listen for wants for exactly these held contents (at most PEER_LIMITS.maxHave). */
  serve(has: readonly HaveEntry[]): void
  /** Stop listening for wants. */
  stop(): void
}

/** `held` tells what this peer holds of a root; `stats` is counted into (the overlay's). */
export function createProviders(
  wire: ProviderWire,
  held: (root: string) => HaveEntry | undefined,
  stats: ProviderStats = { lookups: 0, wantsSent: 0, lookupReplies: 0, wantsServed: 0 },
): Providers {
  const { nats, identity, subjects, log } = wire
  const self = identity.id
  /** Queue subscriptions by the root they serve. */
  const serving = new Map<string, Subscription>()

  const onWant = async (root: string, m: Msg): Promise<void> => {
    const env = parseEnvelope(decode(m.data, PEER_LIMITS.maxWantBytes), 'peer.want', PEER_LIMITS.maxWantBytes)
    const want = parsePeerWant(await open(env))
    wire.admit(want, env.signer)
    if (want.root !== root)
      throw new ProtocolError(`a want for ${want.root} arrived on the subject of ${root}`)
    // Answers go to the asker's own inbox only, never to a subject it chose for someone else.
    if (!isOwnInbox(m.reply, want.worker))
      throw new ProtocolError(`a want from ${want.worker} asks for its answer elsewhere`)
    if (wire.isBanned(want.worker)) {
      m.respond(
        await wire.answer(
          want.worker,
          { type: 'peer.error', code: 'refused', message: 'banned' },
          want.nonce,
        ),
      )
      return
    }
    const entry = held(root)
    stats.wantsServed++
    m.respond(
      await wire.answer(
        want.worker,
        entry === undefined
          ? { type: 'peer.error', code: 'missing', message: `no ${root} here` }
          : { type: 'peer.have', root, bits: entry.bits },
        want.nonce,
      ),
    )
  }

  return {
    stats,
    serve(has) {
      const roots = new Set(has.slice(0, PEER_LIMITS.maxHave).map((h) => h.root))
      for (const [root, sub] of serving)
        if (!roots.has(root)) {
          sub.unsubscribe()
          serving.delete(root)
        }
      if (nats.isClosed()) return
      for (const root of roots) {
        if (serving.has(root)) continue
        serving.set(
          root,
          nats.subscribe(wantSubject(subjects, root), {
            queue: PROVIDER_QUEUE,
            callback: (err, m) => {
              if (err) {
                log.warn('want subscription error', { root, ...errorFields(err) })
                return
              }
              onWant(root, m).catch((err: unknown) => wire.refuse(err))
            },
          }),
        )
      }
    },
    stop() {
      for (const sub of serving.values()) sub.unsubscribe()
      serving.clear()
    },
    async lookup(root, opts = {}) {
      const wants = Math.max(1, Math.min(opts.wants ?? 8, PEER_LIMITS.lookupWants))
      const timeoutMs = opts.timeoutMs ?? 1_000
      const subject = wantSubject(subjects, root)
      stats.lookups++
      /** Nonces of the wants sent, and whether each was answered. */
      const pending = new Map<string, boolean>()
      const found = new Map<string, Provider>()
      let received = 0
      let answered = 0
      let sent = 0
      const inbox = createInbox(inboxPrefixFor(self))
      await new Promise<void>((resolve) => {
        let done = false
        const finish = (): void => {
          if (done) return
          done = true
          clearTimeout(timer)
          sub.unsubscribe()
          resolve()
        }
        const settle = (): void => {
          if (++answered >= wants) finish()
        }
        // At most one message per want: nobody can make a lookup read more. Each want has a reply
        // subject of its own below the inbox (NATS lets a holder answer each reply subject once).
        const sub = nats.subscribe(`${inbox}.*`, {
          max: wants,
          callback: (err, m) => {
            if (err) return finish()
            received++
            stats.lookupReplies++
            // The server's "no responders": nobody holds the content (the status names no want).
            if (m.headers?.code === 503) return settle()
            wire
              .receive(m.data)
              .then((reply) => {
                if (reply.re === undefined || pending.get(reply.re) !== false)
                  throw new ProtocolError(`an answer from ${reply.worker} names no open want`)
                pending.set(reply.re, true)
                if (reply.type === 'peer.have') {
                  if (reply.root !== root)
                    throw new ProtocolError(`${reply.worker} answered a want for ${root} about ${reply.root}`)
                  if (reply.worker !== self && !wire.isBanned(reply.worker))
                    found.set(reply.worker, { id: reply.worker, root, bits: reply.bits, at: Date.now() })
                } else if (reply.type !== 'peer.error')
                  throw new ProtocolError(`${reply.worker} answered a want with ${reply.type}`)
              })
              .catch((err: unknown) => wire.refuse(err))
              .finally(settle)
          },
        })
        const timer = setTimeout(finish, timeoutMs)
        void (async () => {
          for (let i = 0; i < wants && !done; i++) {
            const nonce = randomId()
            const want: PeerWant = { type: 'peer.want', v: 1, worker: self, at: Date.now(), nonce, root }
            const data = encode(await seal('peer.want', want, identity))
            pending.set(nonce, false)
            if (done || nats.isClosed()) break
            nats.publish(subject, data, { reply: `${inbox}.${i}` })
            sent++
            stats.wantsSent++
          }
        })().catch((err: unknown) => {
          log.debug('lookup failed', { root, ...errorFields(err) })
          finish()
        })
      })
      return { providers: [...found.values()], sent, received }
    },
  }
}
