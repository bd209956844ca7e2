// application/problem+json (RFC 9457): every error answer of the HTTP API.
import { Type } from '@sinclair/typebox'

export const PROBLEM_TYPE = 'application/problem+json'

export const problemSchema = Type.Object(
  {
    type: Type.String({ description: 'urn:cohort:problem:<code>, e.g. urn:cohort:problem:invalid-request' }),
    title: Type.String(),
    status: Type.Integer({ minimum: 400, maximum: 599 }),
    detail: Type.String({ description: 'What went wrong and what to do instead' }),
    instance: Type.Optional(Type.String({ description: 'The request path' })),
    field: Type.Optional(
      Type.String({ description: 'The invalid field, e.g. params.to or redundancy.quorum (422)' }),
    ),
    quota: Type.Optional(Type.String({ description: 'The quota used up (429)' })),
    retryAfter: Type.Optional(Type.Integer({ description: 'Seconds to wait (429)' })),
    state: Type.Optional(Type.String({ description: "The job's state (409)" })),
  },
  { description: 'RFC 9457 problem details' },
)
