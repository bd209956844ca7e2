// Messages between the lease-latency section and its thread of probing volunteers (lease-probe.ts).

/** `workerData` of the probe thread. */
export interface ProbeInit {
  natsUrl: string
  /** The coordinator the probes sign up with for NATS credentials; none: they connect without. */
  coordinatorUrl?: string
  subjectPrefix: string
  /** The coordinator key the probes trust. */
  trusted: { keyId: string; publicKey: Uint8Array }
  /** Volunteer identities, each with its own NATS connection. */
  identities: number
  /** Work requests each identity sends per second (below the coordinator's refill rate). */
  perIdentityPerSecond: number
  /** Measured leases wanted in all; unmeasured warm-up requests come first. */
  samples: number
  /** Job kinds the probes say they run (`accepts` of the work request). */
  accepts: string[]
  /** Give up (report what was measured, with an error) after this long. */
  timeoutMs: number
}

export interface ProbeReport {
  type: 'report'
  /** Per lease: request sealed and sent -> unit verified, ms. */
  totalMs: number[]
  /** Per lease: the worker-side check of the unit alone (`verifyUnit`), ms. */
  verifyMs: number[]
  /** Requests answered without a unit, by reason (`rate`, `leases`, or `none`: no work for this identity). */
  empty: { rate: number; leases: number; none: number }
  /** Requests that failed (timeouts, refusals), with the first error seen. */
  failed: number
  firstError?: string
  /** Wall time of the measured part, ms. */
  spanMs: number
}

export type ProbeReply = ProbeReport | { type: 'failed'; message: string }
