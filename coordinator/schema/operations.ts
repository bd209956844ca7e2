// What each route of the HTTP API takes and answers, by `METHOD /path`: the source of
// GET /openapi.json. The bodies are the very schemas the routes check requests with.
import { Type, type TSchema } from '@sinclair/typebox'
import {
  jobListSchema,
  jobRequestSchema,
  jobResultSchema,
  jobTypesSchema,
  jobViewSchema,
  resultLineSchema,
  unitsPageSchema,
  unitsQuerySchema,
} from './jobs.js'
import {
  blobViewSchema,
  claimRequestSchema,
  leaderboardQuerySchema,
  leaderboardSchema,
  volunteerRecordSchema,
  datasetViewSchema,
  healthSchema,
  moduleInfoSchema,
  moduleViewSchema,
  signupChallengeSchema,
  signupReplySchema,
  signupRequestSchema,
  statsSchema,
} from './uploads.js'

export interface Operation {
  summary: string
  tag: string
  /** Needs `Authorization: Bearer <key>` (unless the coordinator runs anonymous). */
  auth: boolean
  query?: TSchema
  body?: { type: string; schema: TSchema; description?: string }
  /** Success answers by status: media type → schema (undefined: bytes or no body). */
  ok: Record<number, { description: string; content?: Record<string, TSchema | undefined> }>
  /** Error statuses this route may answer (application/problem+json), besides 500. */
  errors: number[]
}

const json = (schema: TSchema) => ({ 'application/json': schema })
const bytes = (type: string) => ({ [type]: undefined })
const HASH = 'SHA-256 hex'
const JOB = [401, 404, 429]
const UPLOAD = [401, 408, 413, 415, 422, 429]

export const OPERATIONS: Record<string, Operation> = {
  'GET /healthz': {
    summary: 'Whether Redis and NATS are up',
    tag: 'system',
    auth: false,
    ok: { 200: { description: 'Both up', content: json(healthSchema) } },
    errors: [503],
  },
  'GET /v1/stats': {
    summary: "This coordinator's counters",
    tag: 'system',
    auth: false,
    ok: { 200: { description: 'Counters', content: json(statsSchema) } },
    errors: [],
  },
  'GET /metrics': {
    summary: "This coordinator's metrics in the Prometheus text format (docs/operations.md)",
    tag: 'system',
    auth: false,
    ok: { 200: { description: 'Metrics', content: bytes('text/plain; version=0.0.4') } },
    errors: [503],
  },
  'GET /v1/admin/overview': {
    summary: "The operators' dashboard data: jobs, workers by runtime, throughput, integrity, bytes",
    tag: 'admin',
    auth: true,
    ok: {
      200: { description: 'The overview', content: json(Type.Object({}, { additionalProperties: true })) },
    },
    errors: [401, 403, 429],
  },
  'GET /v1/admin/jobs/{id}/units': {
    summary: "The states of a range of a job's units, one character each (query from, count ≤ 4096)",
    tag: 'admin',
    auth: true,
    ok: {
      200: { description: 'Unit states', content: json(Type.Object({}, { additionalProperties: true })) },
    },
    errors: [400, 401, 403, 404, 429],
  },
  'GET /openapi.json': {
    summary: 'This document (OpenAPI 3.1)',
    tag: 'system',
    auth: false,
    ok: { 200: { description: 'The document', content: json(Type.Record(Type.String(), Type.Unknown())) } },
    errors: [],
  },
  'GET /docs/api': {
    summary: 'A page that renders this document',
    tag: 'system',
    auth: false,
    ok: { 200: { description: 'HTML page', content: bytes('text/html') } },
    errors: [],
  },
  'GET /docs/api/{file}': {
    summary: "The API page's script and stylesheet",
    tag: 'system',
    auth: false,
    ok: { 200: { description: 'app.js or app.css', content: bytes('text/javascript') } },
    errors: [404],
  },
  'GET /v1/job-types': {
    summary: 'Job types: names, versions, descriptions and params schemas',
    tag: 'jobs',
    auth: false,
    ok: { 200: { description: 'The job types', content: json(jobTypesSchema) } },
    errors: [],
  },
  'POST /v1/jobs': {
    summary: 'Submit a job',
    tag: 'jobs',
    auth: true,
    body: { type: 'application/json', schema: jobRequestSchema },
    ok: { 201: { description: 'The job, planned', content: json(jobViewSchema) } },
    errors: [400, 401, 413, 415, 422, 429],
  },
  'GET /v1/jobs': {
    summary: "The caller's 100 most recent jobs (an admin key: everyone's)",
    tag: 'jobs',
    auth: true,
    ok: { 200: { description: 'Jobs, newest first', content: json(jobListSchema) } },
    errors: [401, 429],
  },
  'GET /v1/jobs/{id}': {
    summary: 'A job: state, unit counts, progress',
    tag: 'jobs',
    auth: true,
    ok: { 200: { description: 'The job', content: json(jobViewSchema) } },
    errors: JOB,
  },
  'GET /v1/jobs/{id}/result': {
    summary: 'The validated result; with Accept: application/x-ndjson, the unit outputs one per line',
    tag: 'jobs',
    auth: true,
    ok: {
      200: {
        description:
          'The merged result, or its unit outputs streamed as NDJSON (one line per unit, in order)',
        content: { 'application/json': jobResultSchema, 'application/x-ndjson': resultLineSchema },
      },
    },
    errors: [...JOB, 409],
  },
  'GET /v1/jobs/{id}/events': {
    summary:
      "The job's events as Server-Sent Events: state, progress, each validated unit, result and revisions; resume with Last-Event-ID (docs/client.md)",
    tag: 'jobs',
    auth: true,
    ok: { 200: { description: 'An event stream', content: bytes('text/event-stream') } },
    errors: [400, ...JOB, 503],
  },
  'GET /v1/jobs/{id}/units': {
    summary: 'Per-unit states and validated outputs, also while the job runs; paginated',
    tag: 'jobs',
    auth: true,
    query: unitsQuerySchema,
    ok: { 200: { description: 'One page of units, by index', content: json(unitsPageSchema) } },
    errors: [...JOB, 422],
  },
  'POST /v1/jobs/{id}/resubmit': {
    summary: 'Submit a failed or cancelled job again: same type, params, redundancy and priority, new id',
    tag: 'jobs',
    auth: true,
    ok: { 201: { description: 'The new job', content: json(jobViewSchema) } },
    errors: [...JOB, 409, 422],
  },
  'DELETE /v1/jobs/{id}': {
    summary: 'Cancel a queued or running job',
    tag: 'jobs',
    auth: true,
    ok: { 200: { description: 'The cancelled job', content: json(jobViewSchema) } },
    errors: [...JOB, 409],
  },
  'POST /v1/modules': {
    summary: 'Upload a WebAssembly module for wasm jobs',
    tag: 'uploads',
    auth: true,
    body: { type: 'application/wasm', schema: Type.String({ format: 'binary' }) },
    ok: {
      201: { description: 'Stored', content: json(moduleViewSchema) },
      200: { description: 'Already stored for this key', content: json(moduleViewSchema) },
    },
    errors: UPLOAD,
  },
  'GET /v1/modules/{hash}': {
    summary: `One of your modules, by ${HASH}`,
    tag: 'uploads',
    auth: true,
    ok: { 200: { description: 'The module', content: bytes('application/wasm') } },
    errors: JOB,
  },
  'GET /v1/modules/{hash}/info': {
    summary: 'What a module of yours is: size, memory, warnings',
    tag: 'uploads',
    auth: true,
    ok: { 200: { description: 'The module', content: json(moduleInfoSchema) } },
    errors: JOB,
  },
  'POST /v1/blobs': {
    summary: 'Upload an input blob for wasm jobs (at most 4 MiB)',
    tag: 'uploads',
    auth: true,
    body: { type: 'application/octet-stream', schema: Type.String({ format: 'binary' }) },
    ok: {
      201: { description: 'Stored', content: json(blobViewSchema) },
      200: { description: 'Already stored for this key', content: json(blobViewSchema) },
    },
    errors: UPLOAD,
  },
  'GET /v1/blobs/{hash}': {
    summary: `One of your blobs, by ${HASH}`,
    tag: 'uploads',
    auth: true,
    ok: { 200: { description: 'The blob', content: bytes('application/octet-stream') } },
    errors: JOB,
  },
  'POST /v1/datasets': {
    summary: 'Store a dataset (streamed) as 64 KiB chunks',
    tag: 'uploads',
    auth: true,
    body: { type: 'application/octet-stream', schema: Type.String({ format: 'binary' }) },
    ok: {
      201: { description: 'Stored', content: json(datasetViewSchema) },
      200: { description: 'Already stored for this key', content: json(datasetViewSchema) },
    },
    errors: UPLOAD,
  },
  'GET /v1/datasets/{root}': {
    summary: 'What a dataset of yours holds',
    tag: 'uploads',
    auth: true,
    ok: { 200: { description: 'The dataset', content: json(datasetViewSchema) } },
    errors: JOB,
  },
  'GET /v1/datasets/{root}/data': {
    summary: "A dataset's bytes",
    tag: 'uploads',
    auth: true,
    ok: { 200: { description: 'The bytes', content: bytes('application/octet-stream') } },
    errors: JOB,
  },
  'GET /v1/volunteers/challenge': {
    summary: 'A sign-up challenge and its proof-of-work difficulty',
    tag: 'volunteers',
    auth: false,
    ok: { 200: { description: 'The challenge', content: json(signupChallengeSchema) } },
    errors: [429, 503],
  },
  'POST /v1/volunteers': {
    summary: 'Sign up a volunteer identity: NATS credentials for its own subjects',
    tag: 'volunteers',
    auth: false,
    body: { type: 'application/json', schema: signupRequestSchema },
    ok: { 201: { description: 'The credentials', content: json(signupReplySchema) } },
    errors: [400, 413, 415, 422, 429, 503],
  },
  'GET /v1/volunteers/{id}': {
    summary: "A volunteer identity's public record: credit, units validated, runtimes, name and team",
    tag: 'volunteers',
    auth: false,
    ok: { 200: { description: 'The record', content: json(volunteerRecordSchema) } },
    errors: [400, 404],
  },
  'POST /v1/volunteers/claims': {
    summary: 'Claim a display name and team for an identity, signed by its key',
    tag: 'volunteers',
    auth: false,
    body: { type: 'application/json', schema: claimRequestSchema },
    ok: { 200: { description: 'The record, as claimed', content: json(volunteerRecordSchema) } },
    errors: [400, 404, 413, 415, 422],
  },
  'GET /v1/leaderboard': {
    summary: 'Volunteers (or, with by=team, teams) by credit, best first',
    tag: 'volunteers',
    auth: false,
    query: leaderboardQuerySchema,
    ok: { 200: { description: 'A page of the leaderboard', content: json(leaderboardSchema) } },
    errors: [400],
  },
}
