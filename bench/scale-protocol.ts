// Messages between the scale section (scale.ts), its coordinator processes (scale-coordinator.ts)
// and its threads of simulated volunteers (scale-volunteers.ts).
import type { Endpoints } from './cluster.js'

/** What a coordinator process is told first. */
export interface CoordinatorProcessInit {
  endpoints: Endpoints
  redisPrefix: string
  subjectPrefix: string
  /** The deployment's signing key (`exportIdentity`): every coordinator of it signs with the same key. */
  identity: { v: 1; alg: 'Ed25519'; publicKey: string; privateKey: string }
}

export type CoordinatorRequest =
  { type: 'init'; init: CoordinatorProcessInit } | { type: 'stats' } | { type: 'stop' }

export interface CoordinatorStats {
  type: 'stats'
  /** CPU time (user + system) of the whole process so far, ms. */
  cpuMs: number
  unitsValidated: number
  resultsAccepted: number
}

export type CoordinatorReply =
  | { type: 'started'; url: string }
  | CoordinatorStats
  | { type: 'stopped' }
  | { type: 'failed'; message: string }

/** `workerData` of a volunteer thread. */
export interface VolunteersInit {
  natsUrl: string
  /** Coordinators the volunteers sign up with (spread over them); none: they connect without credentials. */
  coordinatorUrls: string[]
  subjectPrefix: string
  trusted: { keyId: string; publicKey: Uint8Array }
  /** Simulated volunteers on this thread, each with its own identity, credentials and NATS connection. */
  count: number
  /** Index of the first one (names only). */
  firstIndex: number
  /** What one unit takes instead of its computation, ms. */
  unitDelayMs: number
}

export type VolunteersRequest = { type: 'start' } | { type: 'report' } | { type: 'stop' }

export interface VolunteersReport {
  type: 'report'
  /** Per work request that brought units: request sent -> its units verified and held, ms. */
  leaseMs: number[]
  workRequests: number
  /** Work requests answered without a unit. */
  emptyGrants: number
  resultsAccepted: number
  resultsRejected: number
  /** Lease renewals sent. */
  renewals: number
}

export type VolunteersReply =
  { type: 'ready' } | VolunteersReport | { type: 'stopped' } | { type: 'failed'; message: string }
