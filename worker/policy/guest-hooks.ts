// What the daemon asks of a policy ("guest") when it has one, and the narrow view of itself it hands
// the policy at start. The dependency goes one way: the daemon knows these hooks, the policy knows
// only `GuestHost`, never the daemon. Runtime-neutral: the daemon itself stays free of `node:`
// imports; the Node implementation is worker/policy/guest.ts.
import type { ResultAck, SignedEnvelope, UnitPayload } from '../../shared/index.js'
import type { RunOutcome } from '../run-unit.js'
import type { RunHooks } from './run-control.js'
import type { PeerStatus } from './status.js'

/** The daemon's counts the policy shows in its status file. */
export interface HostCounts {
  running: number
  held: number
  unitsDone: number
  resultsAccepted: number
  peers: PeerStatus
  /** `paused` by the volunteer (`cohort worker pause`), `finishing` (stopping after its running units). */
  mode: 'running' | 'paused' | 'finishing'
}

/** What the policy may see and do of the daemon it serves. */
export interface GuestHost {
  /** The worker's id. */
  readonly id: string
  /** Counts now. */
  counts(): HostCounts
  /** Hand back unstarted units and ask for no work (the policy paused for long). */
  pause(): Promise<void>
  /** Ask for work again after `pause()`. */
  resume(): void
}

/** A unit the daemon holds, as the policy sees it. */
export interface HeldView {
  replicaId: string
  kind: string
  state: 'buffered' | 'running' | 'submitting'
  expiresAt: number
}

/** A unit saved by an earlier run of the daemon, with the time it was accepted (when it was valid). */
export interface SavedUnit {
  envelope: SignedEnvelope
  acceptedAt: number
}

export interface DaemonGuest {
  /** False while the policy pauses computing: no unit starts (running ones are paused in place). */
  mayStart(): boolean
  /** How many more units the daemon may ask for, given what it holds and its threads. */
  admit(held: readonly HeldView[], threads: number): number
  /** A verified unit was accepted (its envelope is kept for checkpoints). */
  onAccepted(envelope: SignedEnvelope, unit: UnitPayload): void
  /** Progress, checkpoint and resume wiring for one run of a unit. */
  hooksFor(unit: UnitPayload): RunHooks
  /** The unit left the daemon: `outcome` when computed, undefined when lost, failed or handed back. */
  onFinished(unit: UnitPayload, outcome: RunOutcome | undefined): void
  /** Units with a checkpoint saved by an earlier run of this daemon. */
  restore(): Promise<SavedUnit[]>
  /** Registers the daemon's callback for "the policy changed: start units or ask for work again". */
  onChange(callback: () => void): void
  /** The daemon starts: the policy starts watching the machine and may pause and resume `host`. */
  start(host: GuestHost): void
  /** The coordinator answered a result of this unit. */
  onResult(unitId: string, ack: ResultAck): void
  /** The replicas held (buffered, running, submitting) changed. */
  onHeld(replicaIds: readonly string[]): void
}
