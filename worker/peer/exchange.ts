// Moving leased units between peers: handoff (a worker that stops, pauses or is overloaded gives its
// unstarted units to peers with room) and stealing (an idle worker takes buffered units from a busy
// peer instead of waiting on the coordinator).
//
// The giver signs a lease transfer naming the receiver; the receiver checks the coordinator's
// signature on every unit and the giver's on the transfer, then claims the leases from a coordinator,
// which moves them atomically — or, when the receiver holds or computed another replica of a unit,
// puts that replica straight back in the queue — and re-signs the units for the receiver. So the
// coordinator always knows who holds what, and no worker ever computes two replicas of one unit.
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
  /** Unit ids held now (a peer leaves those out). */
  unitIds(): string[]
  /**
   * Up to `want` buffered units for a peer, from the back of the queue, skipping units `avoid`
   * names and kinds it does not run; they are marked as leaving (not started, still renewed).
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
  forgedUnits: number
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
  ids: string[]
  timer: ReturnType<typeof setTimeout>
}

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
  }
  /** Transfers given to thieves, waiting for their word. */
  const pending = new Map<string, Pending>()

  const sealTransfer = async (to: string, items: Giveable[]): Promise<SignedEnvelope> =>
    seal(
      'lease.transfer',
      {
        type: 'lease.transfer',
        v: 1,
        worker: self,
        at: Date.now(),
        nonce: randomId(),
        to,
        replicaIds: items.map((g) => g.unit.replicaId),
        expiresAt: Date.now() + PEER_LIMITS.transferTtlMs,
      },
      identity,
    )

  /**
   * Receive units from `from`: check the transfer and every unit, claim the leases, buffer what the
   * coordinator re-signed. A forged unit or transfer bans the sender and nothing is claimed.
   */
  const receive = async (
    from: string,
    transferEnv: SignedEnvelope | undefined,
    envelopes: SignedEnvelope[],
  ): Promise<{ claimed: string[]; refused: string[] }> => {
    if (transferEnv === undefined || envelopes.length === 0) return { claimed: [], refused: [] }
    let units: UnitPayload[]
    try {
      const transfer = parseLeaseTransfer(await open(transferEnv))
      if (transfer.worker !== toBase64Url(transferEnv.signer) || transfer.worker !== from)
        throw new SignatureError('transfer is not signed by the peer that sent it')
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
      stats.forgedUnits++
      overlay.penalise(from, `offered units that do not verify: ${(err as Error).message}`, 100)
      throw err
    }
    const undo = host.reserve(units)
    try {
      const claimed = await client.claim(transferEnv)
      await host.adopt(claimed.units)
      stats.received += claimed.units.length
      stats.refusedByCoordinator += claimed.refused.length
      const refused = new Set(claimed.refused)
      return {
        claimed: units.map((u) => u.replicaId).filter((r) => !refused.has(r)),
        refused: claimed.refused,
      }
    } finally {
      undo()
    }
  }

  overlay.handle('handoff', async (msg) => {
    const m = msg as HandoffMessage
    if (!host.accepting() || m.units.length > host.room()) throw new ProtocolError('no room for these units')
    const r = await receive(m.worker, m.transfer, m.units)
    return { type: 'handoff.result', ...r }
  })

  overlay.handle('steal', async (msg) => {
    if (msg.type !== 'steal') return undefined
    const give = Math.min(msg.want, Math.ceil(Math.max(0, host.buffered() - init.keep()) / 2))
    const items = give > 0 ? host.take(give, new Set(msg.accepts), new Set(msg.avoid)) : []
    if (items.length === 0) return { type: 'handoff', units: [] }
    const transfer = await sealTransfer(msg.worker, items)
    const ids = items.map((g) => g.unit.replicaId)
    const key = randomId()
    // If the thief never says what it claimed, the units come back once the transfer has expired.
    const timer = setTimeout(() => {
      pending.delete(key)
      host.restore(ids)
    }, PEER_LIMITS.transferTtlMs + 2_000)
    pending.set(key, { to: msg.worker, ids, timer })
    stats.givenToThieves += items.length
    log.info('units given to a peer that asked', { peer: msg.worker, n: items.length })
    return { type: 'handoff', transfer, units: items.map((g) => g.envelope) }
  })

  overlay.handle('handoff.result', (msg) => {
    if (msg.type !== 'handoff.result') return Promise.resolve(undefined)
    for (const [key, p] of pending) {
      if (p.to !== msg.worker) continue
      const done = new Set([...msg.claimed, ...msg.refused])
      const mine = p.ids.filter((r) => done.has(r))
      if (mine.length === 0 && done.size > 0) continue
      clearTimeout(p.timer)
      pending.delete(key)
      host.forget(mine)
      host.restore(p.ids.filter((r) => !done.has(r)))
    }
    return Promise.resolve(undefined)
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
        const batch = left
          .filter((g) => kinds.has(g.unit.kind))
          .slice(0, Math.min(peer.state.free, PEER_LIMITS.maxTransfer))
        if (batch.length === 0) continue
        try {
          const transfer = await sealTransfer(peer.id, batch)
          const reply: PeerMessage = await overlay.request(peer.id, {
            type: 'handoff',
            transfer,
            units: batch.map((g) => g.envelope),
          })
          if (reply.type !== 'handoff.result') throw new ProtocolError(`peer answered ${reply.type}`)
          const done = new Set([...reply.claimed, ...reply.refused])
          stats.handedOff += reply.claimed.length
          left = left.filter((g) => !done.has(g.unit.replicaId))
          log.info('units handed off to a peer', { peer: peer.id, claimed: reply.claimed.length })
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
          avoid: host.unitIds().slice(0, 256),
        })
        if (reply.type !== 'handoff' || reply.units.length === 0) return 0
        let result = { claimed: [] as string[], refused: [] as string[] }
        try {
          result = await receive(victim.id, reply.transfer, reply.units)
        } finally {
          // Tell the victim what happened, so it forgets what moved and keeps the rest now.
          await overlay.notify(victim.id, { type: 'handoff.result', ...result }).catch(() => {})
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
