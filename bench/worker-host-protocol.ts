// Messages between the benchmark's main thread and the thread hosting its worker daemons.
import type { WorkerStats } from '../worker/index.js'

export interface WorkerSpec {
  threads: number
  /** Units a daemon holds beyond those running; the daemon's default when omitted. */
  bufferUnits?: number
}

/** `workerData` of the host thread. */
export interface HostInit {
  natsUrl: string
  /** The coordinator the daemons sign up with for NATS credentials; none: they connect without. */
  coordinatorUrl?: string
  subjectPrefix: string
  /** The coordinator key the daemons trust. */
  trusted: { keyId: string; publicKey: Uint8Array }
  workers: WorkerSpec[]
}

export type HostRequest =
  /** Start a measurement: forget the first start time, restart event-loop accounting. */
  | { type: 'arm' }
  /** What happened since `arm`. */
  | { type: 'report' }
  | { type: 'stop' }

export interface HostReport {
  type: 'report'
  /** Epoch ms (sub-ms precision) at which the first unit started after `arm`; null if none did. */
  firstStartedAt: number | null
  /** Event-loop utilization of the host thread (all daemons' main work) since `arm`. */
  eventLoopUtilization: number
  /** Units run since `arm`, and the time they spent on the runner (piscina round trip included). */
  runs: number
  runMs: number
  /**
   * Median time a runner thread waited between finishing one unit and starting the next (each start is
   * paired with the oldest unpaired finish); null when there were not enough units.
   */
  medianGapMs: number | null
  stats: WorkerStats[]
}

export type HostReply =
  { type: 'ready' } | HostReport | { type: 'stopped' } | { type: 'failed'; message: string }
