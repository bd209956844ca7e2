// Lease claims (`<prefix>.v1.lease.claim`): a worker takes over leases a peer gave it (a handoff
// before the peer stops, or units an idle peer stole). The claimant presents the transfer the giver
// signed; the coordinator checks both signatures, both nonces, the addressee and the transfer's
// short validity, then moves the leases in one script and signs the units anew for the claimant.
// It never moves a replica of a unit the claimant holds, held or computed: such a replica stays with
// the giver. So a thief cannot pick the units it computes, compute one unit twice, or, by asking
// for a unit it holds, make the giver lose its lease.
import {
  checkWorkerSigned,
  LIMITS,
  open,
  parseEnvelope,
  parseLeaseClaim,
  parseLeaseTransfer,
  PEER_LIMITS,
  ProtocolError,
  type LeaseClaimed,
  type LeaseTransfer,
} from '../shared/index.js'
import { requestService, type RequestContext, type RequestService } from './nats-service.js'
import type { SchedulerInit } from './scheduler.js'

/** The scheduler's components (claims move leases, and units are signed anew), and a hook. */
export interface ClaimServiceInit extends Omit<SchedulerInit, 'kinds'> {
  /** Told how many replicas a refused transfer put back in the queue. */
  onGivenBack: (replicas: number) => void
}

export type ClaimService = RequestService

/** Signed requests are remembered this long: past it their `at` is out of the clock window anyway. */
const NONCE_TTL_MS = 2 * LIMITS.maxClockSkewMs

export function createClaimService(init: ClaimServiceInit): ClaimService {
  const { store, signer, tuning, counters, log } = init

  /** The giver's transfer, checked: signed by the worker it names, to the claimant, still valid, once. */
  const checkTransfer = async (claimant: string, transfer: LeaseTransfer, now: number): Promise<void> => {
    if (transfer.to !== claimant) throw new ProtocolError('the transfer is addressed to another worker')
    if (transfer.worker === claimant) throw new ProtocolError('a worker cannot transfer leases to itself')
    if (transfer.expiresAt <= now) throw new ProtocolError('the transfer has expired')
    if (transfer.expiresAt > transfer.at + 2 * PEER_LIMITS.transferTtlMs)
      throw new ProtocolError(
        `a transfer may be valid for at most ${2 * PEER_LIMITS.transferTtlMs} ms after it is signed`,
      )
    if (!(await store.useNonce(transfer.worker, transfer.nonce, NONCE_TTL_MS)))
      throw new ProtocolError('transfer replayed: it was claimed before')
  }

  const onClaim = async (value: unknown, ctx: RequestContext): Promise<LeaseClaimed> => {
    const env = parseEnvelope(value, 'lease.claim', 32 * 1024)
    const claim = parseLeaseClaim(await ctx.open(env))
    const now = Date.now()
    checkWorkerSigned(claim, env.signer, now)
    if (!(await store.useNonce(claim.worker, claim.nonce, NONCE_TTL_MS)))
      throw new ProtocolError('request replayed: this nonce was used before')
    const transfer = parseLeaseTransfer(await open(claim.transfer))
    // The giver is the transfer's signer: a transfer naming another worker is a forgery.
    checkWorkerSigned(transfer, claim.transfer.signer, now)
    await checkTransfer(claim.worker, transfer, now)
    const replicaIds = [...new Set(transfer.replicaIds)]
    const workers = await store.unitWorkers(replicaIds)
    const barred = replicaIds.filter((r) => workers.get(r)?.has(claim.worker) === true)
    const movable = replicaIds.filter((r) => !barred.includes(r))
    const out =
      movable.length === 0
        ? { moved: [], refused: [], givenBack: 0 }
        : await store.transfer(
            transfer.worker,
            claim.worker,
            movable,
            tuning.leaseMs,
            tuning.maxWorkersPerUnit,
            now,
          )
    counters.leasesTransferred += out.moved.length
    counters.transfersRefused += out.refused.length + barred.length
    counters.leasesReleased += out.givenBack
    if (out.givenBack > 0) init.onGivenBack(out.givenBack)
    log.info('leases transferred', {
      from: transfer.worker,
      to: claim.worker,
      moved: out.moved.length,
      refused: out.refused.length + barred.length,
    })
    const units = await signer.signAll(out.moved, claim.worker, now)
    return { type: 'lease.claimed', v: 1, units, refused: [...barred, ...out.refused] }
  }

  return requestService({ ...init, subject: init.subjects.leaseClaim, handler: onClaim, maxBytes: 64 * 1024 })
}
