// Schemas of the uploads, volunteers and system answers (published in GET /openapi.json). The
// volunteer sign-up body is a signed envelope that shared/volunteer-signup.ts checks in every runtime;
// this schema describes it.
import { Type } from '@sinclair/typebox'

const hash = Type.String({ pattern: '^[0-9a-f]{64}$', description: 'SHA-256 hex' })
const links = Type.Record(Type.String(), Type.String())

export const moduleViewSchema = Type.Object({
  hash,
  size: Type.Integer(),
  memory: Type.Object({ minPages: Type.Integer(), maxPages: Type.Integer() }),
  progress: Type.Boolean({ description: 'Whether it imports cohort.progress' }),
  warnings: Type.Array(Type.String()),
  links,
})

export const moduleInfoSchema = Type.Object({
  hash,
  size: Type.Integer(),
  uploadedAt: Type.String(),
  memoryPages: Type.Optional(Type.String()),
  warnings: Type.Array(Type.String()),
  root: Type.Optional(Type.String({ description: 'Root of its chunked form' })),
})

export const blobViewSchema = Type.Object({ hash, size: Type.Integer(), links })

export const datasetViewSchema = Type.Object({
  root: hash,
  size: Type.Integer(),
  chunks: Type.Integer(),
  chunkSize: Type.Integer(),
  uploadedAt: Type.String({ format: 'date-time' }),
  links,
})

export const healthSchema = Type.Object({
  ok: Type.Boolean(),
  redis: Type.String({ enum: ['up', 'down'] }),
  nats: Type.String({ enum: ['up', 'down'] }),
})

export const statsSchema = Type.Object({ counters: Type.Record(Type.String(), Type.Number()) })

const b64url = (what: string) => Type.String({ pattern: '^[A-Za-z0-9_-]*$', description: what })

export const signupChallengeSchema = Type.Object({
  v: Type.Literal(1),
  challenge: b64url('32 random bytes, valid once until expiresAt'),
  bits: Type.Integer({ description: 'Leading zero bits the proof of work needs' }),
  expiresAt: Type.Integer({ description: 'Milliseconds since the epoch' }),
})

export const signupRequestSchema = Type.Object(
  {
    v: Type.Literal(1),
    body: b64url('msgpack of the signed SignupPayload (docs/security.md)'),
    signer: b64url("The volunteer's Ed25519 public key"),
    sig: b64url('Ed25519 signature'),
    pow: Type.String({ pattern: '^[0-9a-f]{16}$', description: 'Proof-of-work nonce' }),
  },
  { additionalProperties: false },
)

export const signupReplySchema = Type.Object({
  v: Type.Literal(1),
  peerId: Type.String(),
  jwt: Type.String({ description: 'NATS user JWT' }),
  expiresAt: Type.Integer(),
  owner: Type.Optional(Type.String()),
})

export const claimRequestSchema = Type.Object(
  {
    v: Type.Literal(1),
    body: b64url(
      'msgpack of the signed VolunteerClaim {type, v, peerId, name, team?, at, nonce} (docs/volunteers.md)',
    ),
    signer: b64url("The claiming identity's Ed25519 public key"),
    sig: b64url('Ed25519 signature, tag cohort/v1/volunteer.claim'),
  },
  { additionalProperties: false },
)

const ms = (what: string) => Type.Integer({ description: `${what}, ms since the epoch` })

export const volunteerRecordSchema = Type.Object({
  v: Type.Literal(1),
  id: Type.String(),
  name: Type.Optional(Type.String()),
  team: Type.Optional(Type.String()),
  creditMs: Type.Number({ description: 'Estimated compute time of the units its results helped validate' }),
  unitsValidated: Type.Integer(),
  results: Type.Integer(),
  invalid: Type.Integer(),
  runtimes: Type.Record(Type.String(), Type.Integer(), { description: 'Runtime → last seen (ms)' }),
  firstSeen: Type.Optional(ms('First work request')),
  lastSeen: Type.Optional(ms('Last work request')),
  caught: Type.Boolean(),
  rank: Type.Optional(Type.Integer()),
})

export const leaderboardSchema = Type.Object({
  v: Type.Literal(1),
  by: Type.String({ enum: ['volunteer', 'team'] }),
  total: Type.Integer(),
  offset: Type.Integer(),
  entries: Type.Array(Type.Record(Type.String(), Type.Unknown())),
})

export const leaderboardQuerySchema = Type.Object({
  by: Type.Optional(Type.String({ enum: ['volunteer', 'team'] })),
  offset: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000 })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
})
