// Schemas of the jobs API: the job request body (checked by coordinator/job-request.ts) and the
// answers (published in GET /openapi.json).
import { Type, type Static } from '@sinclair/typebox'
import { MAX_CREDIBILITY, MAX_UNIT_SECONDS, MIN_CREDIBILITY } from '../options.js'

export const MAX_QUORUM = 10
export const MAX_REPLICAS = 30
/** Most units one page of GET /v1/jobs/:id/units holds. */
export const MAX_UNITS_PAGE = 1000
export const DEFAULT_UNITS_PAGE = 100

const JSON_OBJECT = Type.Record(Type.String(), Type.Unknown())

export const redundancySchema = Type.Object(
  {
    quorum: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: MAX_QUORUM,
        description: 'Agreeing results a unit needs; default 2',
      }),
    ),
    maxReplicas: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: MAX_REPLICAS,
        description: 'Most replicas of a unit, at least the quorum; default 2 × quorum + 1',
      }),
    ),
    minCredibility: Type.Optional(
      Type.Number({
        minimum: MIN_CREDIBILITY,
        maximum: MAX_CREDIBILITY,
        description: "Credibility a unit's accepted result must reach; default 0.9999",
      }),
    ),
    spotCheckRate: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: 1,
        description: 'Chance that a result accepted alone is checked by other replicas; default 0.1',
      }),
    ),
  },
  { additionalProperties: false },
)

export const jobRequestSchema = Type.Object(
  {
    type: Type.String({ minLength: 1, maxLength: 64, description: 'Job type name (GET /v1/job-types)' }),
    version: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 999_999, description: 'Job type version; default the latest' }),
    ),
    params: Type.Optional(
      Type.Unknown({ description: "The job type's params: see its paramsSchema in GET /v1/job-types" }),
    ),
    redundancy: Type.Optional(redundancySchema),
    priority: Type.Optional(
      Type.Integer({
        minimum: -100,
        maximum: 100,
        description: 'Higher first; default 0; a submitter key may ask at most 10',
      }),
    ),
    plan: Type.Optional(
      Type.Object(
        {
          unitSeconds: Type.Optional(
            Type.Number({
              exclusiveMinimum: 0,
              maximum: MAX_UNIT_SECONDS,
              description:
                "Target seconds of one unit on a typical worker thread; at least the coordinator's plannerMinUnitSeconds",
            }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
  },
  {
    additionalProperties: false,
    'x-message': 'must be a JSON object like {"type":"primes","params":{"to":1000000}}',
  },
)

export type JobRequestBody = Static<typeof jobRequestSchema>

const JOB_STATE = ['queued', 'running', 'completed', 'failed', 'cancelled', 'revising'] as const
const jobState = Type.Unsafe<(typeof JOB_STATE)[number]>({ type: 'string', enum: [...JOB_STATE] })

const revisionSchema = Type.Object({
  at: Type.String({ format: 'date-time' }),
  reason: Type.String(),
  units: Type.Integer(),
  revisedAt: Type.Optional(Type.String({ format: 'date-time' })),
  changed: Type.Optional(Type.Boolean()),
})

export const jobViewSchema = Type.Object(
  {
    id: Type.String(),
    type: Type.String(),
    version: Type.Integer(),
    state: jobState,
    params: JSON_OBJECT,
    redundancy: Type.Object({
      quorum: Type.Integer(),
      maxReplicas: Type.Integer(),
      minCredibility: Type.Number(),
      spotCheckRate: Type.Number(),
    }),
    priority: Type.Integer(),
    plan: Type.Optional(
      Type.Object({
        units: Type.Integer(),
        unitSeconds: Type.Number(),
        by: Type.String({ description: 'explicit, target, spread, floor or fixed' }),
        speedFactor: Type.Number(),
        threads: Type.Integer(),
      }),
    ),
    units: Type.Object({
      total: Type.Integer(),
      validated: Type.Integer(),
      failed: Type.Integer(),
      pending: Type.Integer(),
      planned: Type.Boolean(),
    }),
    extraReplicas: Type.Integer(),
    progress: Type.Number({ minimum: 0, maximum: 1 }),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
    error: Type.Optional(Type.String()),
    revisions: Type.Optional(Type.Array(revisionSchema)),
    resubmittedFrom: Type.Optional(Type.String({ description: 'The job this one was resubmitted from' })),
    links: Type.Record(Type.String(), Type.String()),
  },
  { description: 'A job' },
)

export const jobListSchema = Type.Object({ jobs: Type.Array(jobViewSchema) })

export const jobResultSchema = Type.Object({
  id: Type.String(),
  type: Type.String(),
  version: Type.Integer(),
  params: JSON_OBJECT,
  result: Type.Unknown({ description: "The merged result; its shape is the job type's" }),
  revising: Type.Optional(Type.Boolean()),
  revisions: Type.Optional(Type.Array(revisionSchema)),
})

/** One line of GET /v1/jobs/:id/result as application/x-ndjson. */
export const resultLineSchema = Type.Union(
  [
    Type.Object({
      id: Type.String(),
      type: Type.String(),
      version: Type.Integer(),
      params: JSON_OBJECT,
      units: Type.Integer({ description: 'Lines of units that follow' }),
    }),
    Type.Object({
      unit: Type.Integer({ description: 'Unit index, in order' }),
      output: Type.Unknown({ description: 'The validated output of the unit (bytes as base64)' }),
    }),
  ],
  { description: 'First line: the job; then one line per unit, in order' },
)

export const jobTypesSchema = Type.Object({
  jobTypes: Type.Array(
    Type.Object({
      name: Type.String(),
      version: Type.Integer(),
      description: Type.String(),
      maxUnits: Type.Integer(),
      paramsSchema: JSON_OBJECT,
    }),
  ),
})

const UNIT_STATE = ['pending', 'validated', 'failed'] as const
export type UnitState = (typeof UNIT_STATE)[number]
const unitState = Type.Unsafe<UnitState>({ type: 'string', enum: [...UNIT_STATE] })

export const unitsQuerySchema = Type.Object(
  {
    state: Type.Optional(unitState),
    cursor: Type.Optional(
      Type.String({ pattern: '^(0|[1-9][0-9]{0,8})$', description: 'nextCursor of the previous page' }),
    ),
    limit: Type.Optional(
      Type.String({
        pattern: '^[1-9][0-9]{0,3}$',
        description: `Units per page, 1..${MAX_UNITS_PAGE}; default ${DEFAULT_UNITS_PAGE}`,
      }),
    ),
  },
  { additionalProperties: false },
)

export const unitsPageSchema = Type.Object({
  units: Type.Array(
    Type.Object({
      index: Type.Integer(),
      state: unitState,
      output: Type.Optional(Type.Unknown({ description: 'When validated: the output (bytes as base64)' })),
      error: Type.Optional(Type.String({ description: 'When failed: why' })),
    }),
  ),
  total: Type.Integer({ description: 'Units of the job' }),
  nextCursor: Type.Optional(Type.String({ description: 'Absent on the last page' })),
})
