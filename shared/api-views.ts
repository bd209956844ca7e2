// What the coordinator's HTTP API answers, defined once: the coordinator builds these views and the
// client (client/) reads them.
import type { JobStateName } from './job-events.js'

/** A revision of a job's result after backtracking (`changed` and `revisedAt` once merged again). */
export interface RevisionView {
  at: string
  reason: string
  units: number
  revisedAt?: string
  changed?: boolean
}

/** The planner's choice of unit size, and why (docs/ARCHITECTURE.md, "Planner"). */
export interface PlanView {
  units: number
  /** Expected seconds per unit on a typical worker thread. */
  unitSeconds: number
  by: 'explicit' | 'target' | 'spread' | 'floor' | 'fixed'
  /** Measured ms per estimated ms of this kind, reported by workers (1 when none has). */
  speedFactor: number
  /** Worker threads the planner counted online. */
  threads: number
}

/** GET /v1/jobs/:id (and what POST /v1/jobs, GET /v1/jobs and DELETE /v1/jobs/:id answer). */
export interface JobView {
  id: string
  type: string
  version: number
  state: JobStateName
  /** The params as stored: the unit size the planner chose filled in. */
  params: unknown
  /** How many agreeing results a unit needs, and how credible they must be (docs/security.md). */
  redundancy: { quorum: number; maxReplicas: number; minCredibility: number; spotCheckRate: number }
  priority: number
  plan?: PlanView
  units: { total: number; validated: number; failed: number; pending: number; planned: boolean }
  extraReplicas: number
  /** Validated units over all units (1 once completed). */
  progress: number
  createdAt: string
  updatedAt: string
  error?: string
  revisions?: RevisionView[]
  links: { self: string; result: string; units: string }
}

/** GET /v1/jobs/:id/result. */
export interface ResultView<R = unknown> {
  id: string
  type: string
  version: number
  params: unknown
  result: R
  /** The result is being revised after backtracking (still the last merged one). */
  revising?: boolean
  revisions?: RevisionView[]
}

/** One entry of GET /v1/job-types. */
export interface JobTypeView {
  name: string
  version: number
  description: string
  maxUnits: number
  paramsSchema: unknown
}

/** What POST /v1/modules answers. */
export interface ModuleView {
  hash: string
  size: number
  memory: { minPages: number; maxPages: number }
  /** Whether the module reports its progress. */
  progress: boolean
  warnings: string[]
  links: { self: string }
}

/** What POST /v1/blobs answers. */
export interface BlobView {
  hash: string
  size: number
  links: { self: string }
}

/** What POST /v1/datasets (and GET /v1/datasets/:root) answers. */
export interface DatasetView {
  root: string
  size: number
  chunks: number
  chunkSize: number
  uploadedAt: string
  links: { self: string; data: string }
}
