// Moving leased units between peers: handoff (a worker that stops, pauses or is overloaded gives its
// unstarted units to peers with room) and stealing (an idle worker takes buffered units from a busy
// peer instead of waiting on the coordinator).
//
// The giver signs a lease transfer naming the receiver; the receiver checks the coordinator's
// signature on every unit and the giver's on the transfer, then claims the leases from a coordinator,
// which moves them atomically and re-signs the units for the receiver. It never moves a replica of a
// unit the receiver holds, held or computed: that replica stays with the giver. The giver, not the
// receiver, chooses what to give, and it lets go of a unit only on the coordinator's word: the units
// re-signed for the receiver, which the receiver passes back in its `handoff.result`. Only forgery
// (a bad signature, a unit no trusted coordinator signed) is held against a peer; an expired or
// replayed transfer is refused and counted, since anyone can replay an honest peer's messages.
// No `node:` imports: browser tabs exchange units too.
import {
  errorFields,
  open,
  parseLeaseTransfer,
  PEER_LIMITS,
  ProtocolError,
  randomId,
  seal,
  SignatureError,
  toBase64Url,
  type AnyJobType,
  type HandoffMessage,
  type HandoffResult,
  type Identity,
  type Logger,
  type PeerMessage,
  type SignedEnvelope,
  type UnitPayload,
} from '../../shared/index.js'
import type { CoordinatorClient } from '../coordinator-client.js'
import { verifyUnit, type TrustedKeys } from '../unit-verifier.js'
import type { PeerOverlay } from './overlay.js'

/** A buffered unit the host can give away, with the coordinator's envelope. */
export interface Giveable {
  envelope: SignedEnvelope
  unit: UnitPayload
}

/** What the exchange needs from the daemon. */
export interface ExchangeHost {
  /** False while stopping or paused: the host takes no units from peers. */
  accepting(): boolean
  /** Units a peer could run now (the host's free room). */
  room(): number
  /** Units buffered (not started, not leaving). */
  buffered(): number
  /** Job kinds this worker runs. */
  accepts(): string[]
  /**
   * Up to `want` buffered units for a peer, from the back of the queue, skipping units `avoid`
   * names (units this worker knows the peer holds or held) and kinds it does not run; they are
   * marked as leaving (not started, still renewed).
   */
  take(want: number, accepts: ReadonlySet<string>, avoid: ReadonlySet<string>): Giveable[]
  /** Units that did not leave after all: buffered again. */
  restore(replicaIds: string[]): void
  /** Units that left (claimed by the peer, or put back in the queue by the coordinator). */
  forget(replicaIds: string[]): void
  /** Reserve slots for replicas being claimed (listed as held, never run); returns the undo. */
  reserve(units: UnitPayload[]): () => void
  /** Units claimed for this worker (re-signed for it): verify and buffer them like a grant. */
  adopt(units: SignedEnvelope[]): Promise<void>
}

export interface ExchangeInit {
  identity: Identity
  trusted: TrustedKeys
  jobTypes: ReadonlyMap<string, AnyJobType>
  client: CoordinatorClient
  overlay: PeerOverlay
  host: ExchangeHost
  log: Logger
  /** Units a victim keeps for itself when asked to share (its threads). */
  keep(): number
}

export interface ExchangeStats {
  handedOff: number
  stolen: number
  givenToThieves: number
  received: number
  refusedByCoordinator: number
  /** Offers whose signatures did not verify (the sender is banned). */
  forgedUnits: number
  /** Offers refused without blame: an expired transfer, units not for the sender, a kind not run here. */
  offersRefused: number
  /** Units a receiver said it claimed without the coordinator's units to show for it: kept here. */
  unprovenClaims: number
}

export interface Exchange {
  readonly stats: ExchangeStats
  /** Give units to peers with room; returns the replica ids no peer took (release them). */
  handoff(items: Giveable[]): Promise<string[]>
  /** Take buffered units from the busiest peer; returns how many were claimed. */
  steal(want: number): Promise<number>
  stop(): void
}

interface Pending {
  to: string
  items: Giveable[]
  timer: ReturnType<typeof setTimeout>
}

/** Units remembered per peer as held by it (so they are not offered to it again), and peers remembered. */
const KNOWN_UNITS_PER_PEER = 1024
const KNOWN_PEERS = 256

export function createExchange(init: ExchangeInit): Exchange {
  const { identity, overlay, client, host, log } = init
  const self = identity.id
  const stats: ExchangeStats = {
    handedOff: 0,
    stolen: 0,
    givenToThieves: 0,
    received: 0,
    refusedByCoordinator: 0,
    forgedUnits: 0,
    offersRefused: 0,
    unprovenClaims: 0,
  }
  /** Transfers given to thieves, by the transfer's nonce, waiting for their word. */
  const pending = new Map<string, Pending>()
  /** Per peer, units it holds or held as far as this worker knows: never offered to it. */
  const known = new Map<string, Set<string>>()

  const remember = (peerId: string, unitIds: Iterable<string>): void => {
    let set = known.get(peerId)
    known.delete(peerId)
    if (set === undefined) set = new Set()
    for (const u of unitIds) if (set.size < KNOWN_UNITS_PER_PEER) set.add(u)
    known.set(peerId, set)
    for (const oldest of known.keys()) {
      if (known.size <= KNOWN_PEERS) break
      known.delete(oldest)
    }
  }

  const sealTransfer = async (
    to: string,
    items: Giveable[],
  ): Promise<{ env: SignedEnvelope; nonce: string }> => {
    const nonce = randomId()
    const env = await seal(
      'lease.transfer',
      {
        type: 'lease.transfer',
        v: 1,
        worker: self,
        at: Date.now(),
        nonce,
        to,
        replicaIds: items.map((g) => g.unit.replicaId),
        expiresAt: Date.now() + PEER_LIMITS.transferTtlMs,
      },
      identity,
    )
    return { env, nonce }
  }

  /**
   * The replicas among `items` that the coordinator moved to `to`: those of `units` it signed for
   * `to` after it signed them for this worker. A receiver's word alone moves nothing. Units that do
   * not verify as the coordinator's are a forgery by the receiver.
   */
  const proven = async (to: string, items: Giveable[], units: SignedEnvelope[]): Promise<Set<string>> => {
    const given = new Map(items.map((g) => [g.unit.replicaId, g.unit]))
    const out = new Set<string>()
    for (const env of units) {
      let unit: UnitPayload
      try {
        unit = await verifyUnit(env, { trusted: init.trusted, self: to, jobTypes: init.jobTypes, now: 0 })
      } catch (err) {
        if (err instanceof SignatureError) {
          stats.forgedUnits++
          overlay.penalise(to, `reported a claim with units that do not verify: ${err.message}`, 100)
          return new Set()
        }
        continue
      }
      const mine = given.get(unit.replicaId)
      if (mine !== undefined && unit.unitId === mine.unitId && unit.issuedAt > mine.issuedAt)
        out.add(unit.replicaId)
    }
    return out
  }

  /** What a receiver's `handoff.result` proves: forget those units, keep the rest, learn what it holds. */
  const settle = async (
    to: string,
    items: Giveable[],
    result: HandoffResult,
  ): Promise<{ moved: string[]; kept: string[] }> => {
    const moved = await proven(to, items, result.units)
    const said = new Set(result.claimed)
    stats.unprovenClaims += items.filter(
      (g) => said.has(g.unit.replicaId) && !moved.has(g.unit.replicaId),
    ).length
    // What it claimed it holds now; what the coordinator refused it may hold or have held.
    const refused = new Set(result.refused)
    remember(
      to,
      items
        .filter((g) => moved.has(g.unit.replicaId) || refused.has(g.unit.replicaId))
        .map((g) => g.unit.unitId),
    )
    if (moved.size > 0) overlay.vouch(to)
    return {
      moved: items.filter((g) => moved.has(g.unit.replicaId)).map((g) => g.unit.replicaId),
      kept: items.filter((g) => !moved.has(g.unit.replicaId)).map((g) => g.unit.replicaId),
    }
  }

  /**
   * Receive units from `from`: check the transfer and every unit, claim the leases, buffer what the
   * coordinator re-signed. Forged signatures ban the sender; anything else (an expired transfer, a
   * replay that got this far, units for someone else) is refused without blame. Nothing is claimed
   * unless every check passed.
   */
  const receive = async (
    from: string,
    transferEnv: SignedEnvelope,
    envelopes: SignedEnvelope[],
  ): Promise<Omit<HandoffResult, keyof WorkerSignedTo | 'type'>> => {
    let units: UnitPayload[]
    let nonce: string
    try {
      const transfer = parseLeaseTransfer(await open(transferEnv))
      if (transfer.worker !== toBase64Url(transferEnv.signer) || transfer.worker !== from)
        throw new SignatureError('transfer is not signed by the peer that sent it')
      nonce = transfer.nonce
      if (transfer.to !== self) throw new ProtocolError('transfer names another receiver')
      if (transfer.expiresAt <= Date.now()) throw new ProtocolError('transfer has expired')
      units = []
      for (const env of envelopes) {
        // The giver renewed its leases, so the expiry signed at issue may have passed: the
        // coordinator decides at the claim whether the giver still holds them, and the units it
        // re-signs are checked in full. Everything else is checked here.
        units.push(
          await verifyUnit(env, {
            trusted: init.trusted,
            self: from,
            jobTypes: init.jobTypes,
            now: 0,
          }),
        )
      }
      const named = new Set(transfer.replicaIds)
      if (units.length !== named.size || units.some((u) => !named.has(u.replicaId)))
        throw new ProtocolError('the units are not the ones the transfer names')
    } catch (err) {
      if (err instanceof SignatureError) {
        stats.forgedUnits++
        overlay.penalise(from, `offered units that do not verify: ${err.message}`, 100)
      } else {
        stats.offersRefused++
        log.info('refused units offered by a peer', { peer: from, ...errorFields(err) })
      }
      throw err
    }
    const undo = host.reserve(units)
    try {
      const claimed = await client.claim(transferEnv)
      await host.adopt(claimed.units)
      stats.received += claimed.units.length
      stats.refusedByCoordinator += claimed.refused.length
      const refused = new Set(claimed.refused)
      if (claimed.units.length > 0) overlay.vouch(from)
      return {
        transfer: nonce,
        claimed: units.map((u) => u.replicaId).filter((r) => !refused.has(r)),
        refused: claimed.refused,
        units: claimed.units,
      }
    } finally {
      undo()
    }
  }

  overlay.handle('handoff', async (msg) => {
    const m = msg as HandoffMessage
    if (m.transfer === undefined || m.units.length === 0) throw new ProtocolError('a handoff without units')
    if (!host.accepting() || m.units.length > host.room()) throw new ProtocolError('no room for these units')
    const r = await receive(m.worker, m.transfer, m.units)
    return { type: 'handoff.result', ...r }
  })

  // The victim chooses: units from the back of its queue, none it knows the thief holds or held.
  overlay.handle('steal', async (msg) => {
    if (msg.type !== 'steal') return undefined
    const give = Math.min(msg.want, Math.ceil(Math.max(0, host.buffered() - init.keep()) / 2))
    const avoid = known.get(msg.worker) ?? new Set<string>()
    const items = give > 0 ? host.take(give, new Set(msg.accepts), avoid) : []
    if (items.length === 0) return { type: 'handoff', units: [] }
    const { env: transfer, nonce } = await sealTransfer(msg.worker, items)
    // If the thief never says what it claimed, the units come back once the transfer has expired
    // (a claim after that fails); if it did claim them, the next renewal reports them lost.
    const timer = setTimeout(() => {
      pending.delete(nonce)
      host.restore(items.map((g) => g.unit.replicaId))
    }, PEER_LIMITS.transferTtlMs + 2_000)
    pending.set(nonce, { to: msg.worker, items, timer })
    stats.givenToThieves += items.length
    log.info('units given to a peer that asked', { peer: msg.worker, n: items.length })
    return { type: 'handoff', transfer, units: items.map((g) => g.envelope) }
  })

  overlay.handle('handoff.result', async (msg) => {
    if (msg.type !== 'handoff.result') return undefined
    const p = pending.get(msg.transfer)
    // Only the thief the transfer named may report on it, once.
    if (p === undefined || p.to !== msg.worker) return undefined
    pending.delete(msg.transfer)
    clearTimeout(p.timer)
    const { moved, kept } = await settle(p.to, p.items, msg)
    host.forget(moved)
    host.restore(kept)
    return undefined
  })

  return {
    stats,
    async handoff(items) {
      let left = [...items]
      const peers = overlay
        .peers()
        .filter((p) => p.state.free > 0 && !p.state.leaving)
        .sort((a, b) => b.state.free - a.state.free)
      for (const peer of peers) {
        if (left.length === 0) break
        const kinds = new Set(peer.state.accepts)
        const avoid = known.get(peer.id)
        const batch = left
          .filter((g) => kinds.has(g.unit.kind) && avoid?.has(g.unit.unitId) !== true)
          .slice(0, Math.min(peer.state.free, PEER_LIMITS.maxTransfer))
        if (batch.length === 0) continue
        try {
          const { env: transfer } = await sealTransfer(peer.id, batch)
          const reply: PeerMessage = await overlay.request(peer.id, {
            type: 'handoff',
            transfer,
            units: batch.map((g) => g.envelope),
          })
          if (reply.type !== 'handoff.result') throw new ProtocolError(`peer answered ${reply.type}`)
          const { moved } = await settle(peer.id, batch, reply)
          const gone = new Set(moved)
          stats.handedOff += gone.size
          left = left.filter((g) => !gone.has(g.unit.replicaId))
          log.info('units handed off to a peer', { peer: peer.id, claimed: gone.size })
        } catch (err) {
          log.debug('handoff to a peer failed', { peer: peer.id, ...errorFields(err) })
        }
      }
      return left.map((g) => g.unit.replicaId)
    },
    async steal(want) {
      const victims = overlay
        .peers()
        .filter((p) => p.state.buffered > 0 && !p.state.leaving && p.state.running >= p.state.threads)
        .sort((a, b) => b.state.buffered - a.state.buffered)
      const victim = victims[0]
      if (victim === undefined || !host.accepting()) return 0
      try {
        const reply = await overlay.request(victim.id, {
          type: 'steal',
          want: Math.min(want, PEER_LIMITS.maxTransfer),
          accepts: host.accepts(),
        })
        if (reply.type !== 'handoff' || reply.transfer === undefined || reply.units.length === 0) return 0
        let result: Omit<HandoffResult, keyof WorkerSignedTo | 'type'> | undefined
        try {
          result = await receive(victim.id, reply.transfer, reply.units)
        } finally {
          // Tell the victim what happened, with the coordinator's units as proof, so it forgets what
          // moved and runs the rest now. (When the transfer did not even parse, it waits it out.)
          const nonce = result?.transfer ?? (await transferNonce(reply.transfer))
          if (nonce !== undefined)
            await overlay
              .notify(victim.id, {
                type: 'handoff.result',
                transfer: nonce,
                claimed: result?.claimed ?? [],
                refused: result?.refused ?? [],
                units: result?.units ?? [],
              })
              .catch(() => {})
        }
        stats.stolen += result.claimed.length
        if (result.claimed.length > 0)
          log.info('units taken from a busy peer', { peer: victim.id, n: result.claimed.length })
        return result.claimed.length
      } catch (err) {
        log.debug('stealing from a peer failed', { peer: victim.id, ...errorFields(err) })
        return 0
      }
    },
    stop() {
      for (const p of pending.values()) clearTimeout(p.timer)
      pending.clear()
    },
  }
}

/** The fields the overlay adds to a message. */
type WorkerSignedTo = { v: number; worker: string; at: number; nonce: string; to: string; re?: string }

/** The nonce of a transfer envelope, when it parses. */
async function transferNonce(env: SignedEnvelope): Promise<string | undefined> {
  try {
    return parseLeaseTransfer(await open(env)).nonce
  } catch {
    return undefined
  }
}
