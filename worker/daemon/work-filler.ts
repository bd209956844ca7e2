// Keeps the worker supplied: asks the coordinators for as many units as it has room for (threads plus
// the buffer, less what it holds still to compute, within the policy's cap), waits when told to (a
// rate limit's time, an empty grant's retry time, a failing request's backoff) unless woken, and when
// no coordinator has work and threads are idle, takes buffered units from a busy peer.
//
// An idle worker asks less and less often: the coordinators' empty grants say how long to wait, a
// time that grows with the empty grants in a row (up to minutes) and is already spread at random, so
// it is waited as said, whatever happens on this worker meanwhile; only `work.available` (about one
// wake-up per grant's worth of ready replicas, to one volunteer each) ends the wait early. Failing
// requests back off on the worker's own schedule, spread at random too, so a crowd that lost its
// coordinators (a NATS node gone) does not come back in step.
//
// The buffer is sized in time, not units: enough units to keep every thread busy for `bufferMs` at
// the measured time per unit (at least one per thread). Tiny units then come many to a grant, under
// one signature, and the worker asks again only once half its buffer has room (or a thread is about
// to starve), so a request carries enough work to be worth its round trip. No `node:` imports.
import { errorFields, LIMITS, type Logger, type SignedEnvelope } from '../../shared/index.js'
import type { CoordinatorClient } from '../coordinator-client.js'
import type { DaemonGuest, HeldView } from '../policy/guest-hooks.js'
import type { Wake } from '../wake.js'
import type { HeldUnits } from './held-units.js'

export interface WorkFillerInit {
  held: HeldUnits
  client: Pick<CoordinatorClient, 'requestWork'>
  /** Notified when something changes (a result sent, a unit gone, new work announced). */
  wake: Wake
  /**
   * Notified only when the coordinators announce work (`work.available`, which also notifies
   * `wake`): the one thing that ends an empty grant's wait early. Default: `wake`.
   */
  announced?: Wake
  /** Kinds (`name@version`) this worker runs. */
  accepts: readonly string[]
  threads(): number
  /** Units held beyond those running. Default: sized from `bufferMs` (read at every request). */
  bufferUnits?: number | undefined
  /** Work to hold beyond the running units, in ms of the threads' time. Default 500. */
  bufferMs?: number | undefined
  /** Measured wall time of one unit on one thread; undefined before the first unit ended. */
  perUnitMs?: () => number | undefined
  guest?: Pick<DaemonGuest, 'admit'> | undefined
  paused(): boolean
  stopping(): boolean
  /** Verifies and holds granted units. */
  accept(envelopes: readonly SignedEnvelope[]): Promise<void>
  /** The worker paused while a request was in flight: what it got goes away again. */
  onPausedGrant(): Promise<void>
  /** Takes up to `want` units from busy peers, returning how many; undefined when stealing is off. */
  steal?: ((want: number) => Promise<number>) | undefined
  log: Logger
}

export interface WorkFiller {
  /** Units held at most: threads plus the buffer. */
  capacity(): number
  /** Units held beyond those running. */
  buffer(): number
  /** Units to ask for now: capacity less what is held still to compute (results on their way take no room). */
  room(): number
  /** The fill loop; resolves once the worker stops. */
  run(): Promise<void>
}

/** First wait after a failed request; it doubles up to `MAX_BACKOFF_MS`, each wait drawn in [½, 1] of it. */
const FIRST_BACKOFF_MS = 250
const MAX_BACKOFF_MS = 5_000
/** Wait with no room, unless woken. */
const IDLE_WAIT_MS = 5_000
const DEFAULT_BUFFER_MS = 500

/**
 * Units to hold beyond the running ones: `bufferMs` of work for every thread at `perUnitMs`, at least
 * one per thread, at most what one grant may carry less the running units.
 */
export function bufferFor(threads: number, perUnitMs: number | undefined, bufferMs: number): number {
  if (perUnitMs === undefined || !(perUnitMs > 0)) return threads
  const wanted = Math.ceil((threads * bufferMs) / perUnitMs)
  return Math.max(threads, Math.min(wanted, LIMITS.maxWant - threads))
}

/** A wait between half of `ms` and all of it, so many workers do not retry in step. */
export function jittered(ms: number, random: () => number = Math.random): number {
  return Math.round(ms / 2 + random() * (ms / 2))
}

export function createWorkFiller(init: WorkFillerInit): WorkFiller {
  const { held, wake, log } = init
  const announced = init.announced ?? wake
  const bufferMs = init.bufferMs ?? DEFAULT_BUFFER_MS
  const buffer = (): number => init.bufferUnits ?? bufferFor(init.threads(), init.perUnitMs?.(), bufferMs)
  const capacity = (): number => init.threads() + buffer()
  const room = (): number => capacity() - held.size + held.count('submitting')
  /**
   * Worth a request now: half the buffer has room, or a thread would otherwise soon have nothing to
   * start. A buffer of whole units refilled one by one would ask once per unit.
   */
  const worthAsking = (want: number): boolean =>
    want >= Math.max(1, Math.floor(buffer() / 2)) || held.count('buffered') < init.threads()

  const heldViews = (): HeldView[] =>
    held.all().map((h) => ({
      replicaId: h.unit.replicaId,
      kind: h.unit.kind,
      expiresAt: h.expiresAt,
      state: h.state === 'running' || h.state === 'submitting' ? h.state : 'buffered',
    }))

  /** No work from the coordinators and threads idle: take buffered units from a busy peer. */
  const stealIfIdle = async (): Promise<boolean> => {
    const idle = init.threads() - held.count('running') - held.count('buffered')
    if (init.steal === undefined || idle <= 0 || init.paused() || init.stopping()) return false
    return (await init.steal(idle)) > 0
  }

  const run = async (): Promise<void> => {
    let backoff = FIRST_BACKOFF_MS
    // A coordinator that rate-limited this worker said when to ask again: no wake-up comes sooner.
    let notBefore = 0
    // An empty grant said when to ask again: until then only `work.available` brings a request (idle
    // threads still try to take work from busy peers whenever something changes here).
    let quietUntil = 0
    let announcements = announced.notified
    while (!init.stopping()) {
      if (Date.now() < notBefore) {
        await wake.wait(notBefore - Date.now())
        continue
      }
      if (Date.now() < quietUntil && announced.notified === announcements) {
        if (!(await stealIfIdle())) await wake.wait(quietUntil - Date.now())
        continue
      }
      quietUntil = 0
      const guestCap = init.guest?.admit(heldViews(), init.threads())
      // Held units never outnumber what one request can list as `holding`: a lease left off that list
      // would be taken back as lost in transit.
      const want = Math.min(
        LIMITS.maxWant,
        room(),
        LIMITS.maxReplicaIds - held.size,
        guestCap ?? Number.POSITIVE_INFINITY,
      )
      if (init.paused() || want <= 0 || !worthAsking(want)) {
        await wake.wait(IDLE_WAIT_MS)
        continue
      }
      try {
        const ids = held.ids()
        announcements = announced.notified
        const grant = await init.client.requestWork(
          want,
          [...init.accepts],
          ids.length <= LIMITS.maxReplicaIds ? ids : undefined,
        )
        backoff = FIRST_BACKOFF_MS
        if (grant.limit !== undefined) log.debug('work request limited', { ...grant.limit })
        if (grant.limit?.by === 'rate') notBefore = Date.now() + grant.retryAfterMs
        await init.accept(grant.units)
        // Too late to run them: stop() or pause() hands them straight back.
        if (init.stopping()) break
        if (init.paused()) await init.onPausedGrant()
        else if (grant.units.length === 0) {
          // "Nothing for you, ask again in retryAfterMs" is waited as said: a unit finishing here does
          // not make work appear there. At the lease cap, a result validated here does make room:
          // any change ends that wait.
          if (grant.limit === undefined) quietUntil = Date.now() + grant.retryAfterMs
          else if (!(await stealIfIdle())) await wake.wait(grant.retryAfterMs)
        }
      } catch (err) {
        log.debug('work request failed', errorFields(err))
        await wake.wait(jittered(backoff))
        backoff = Math.min(MAX_BACKOFF_MS, backoff * 2)
      }
    }
  }

  return { capacity, buffer, room, run }
}
