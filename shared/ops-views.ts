// What the operators' dashboard reads (GET /v1/admin/overview and /v1/admin/jobs/:id/units): the
// coordinator writes these shapes, the page in the browser reads them.

/** A unit's state as the dashboard draws it, one character each. */
export const UNIT_CODES = {
  /** Pending, no replica leased now. */
  planned: 'p',
  /** Pending, at least one replica leased now. */
  leased: 'l',
  validated: 'v',
  /** Pending with results that disagree (more replicas were issued). */
  disputed: 'd',
  failed: 'f',
  /** No such unit (not yet planned, or its data expired). */
  missing: '-',
} as const

export type UnitState = keyof typeof UNIT_CODES

export type RuntimeLabel = 'daemon' | 'browser' | 'unknown'

export interface OverviewJob {
  id: string
  type: string
  owner: string
  state: string
  quorum: number
  units: { total: number; validated: number; failed: number }
  planned: boolean
  createdAt: number
  updatedAt: number
}

export interface OnlineWorker {
  id: string
  runtime: RuntimeLabel
  lastSeen: number
  /** Its results that agreed with an accepted one, ever. */
  valid: number
  /** Its credit, ms of estimated compute. */
  creditMs: number
}

export interface Throughput {
  bucketMs: number
  /** Start of the first bucket (ms since the epoch). */
  since: number
  /** Units validated per bucket, oldest first; the last is under way. */
  units: number[]
}

export interface Overview {
  at: number
  jobs: OverviewJob[]
  workers: { online: Record<RuntimeLabel, number>; list: OnlineWorker[] }
  throughput: Throughput
  /** The serving coordinator's own counts. */
  integrity: {
    disagreements: number
    identitiesCaught: number
    unitsBacktracked: number
    resultsDiscarded: number
    jobsRevised: number
  }
  /** Bytes served by this coordinator; bytes between peers are known to workers only (null). */
  bytes: { coordinator: number; coordinatorChunks: number; coordinatorModules: number; peers: number | null }
  counters: Record<string, number>
}

export interface UnitStatesView {
  jobId: string
  state: string
  total: number
  from: number
  /** One UNIT_CODES character per unit from `from`. */
  states: string
  codes: typeof UNIT_CODES
}
