// GET /openapi.json: an OpenAPI 3.1 document built from the routes the routers register and the
// schemas of coordinator/schema (the ones requests are checked with). A route without an entry in
// OPERATIONS cannot be documented and makes the build throw.
import type { TSchema } from '@sinclair/typebox'
import type { AnyJobType } from '../../shared/index.js'
import { OPERATIONS, type Operation } from './operations.js'
import { PROBLEM_TYPE, problemSchema } from './problem.js'

export interface DocumentedRoute {
  method: string
  path: string
}

const TITLES: Record<number, string> = {
  400: 'Malformed JSON or body',
  401: 'No or unknown API key',
  404: 'Not found (or not yours)',
  408: 'Upload too slow',
  409: 'Not in a state that allows it',
  413: 'Body too large',
  415: 'Wrong Content-Type',
  422: 'Invalid field: `field` names it',
  429: 'Quota or rate limit reached: Retry-After',
  500: 'Internal error (logged)',
  503: 'Unavailable',
}

/** Plain JSON Schema: TypeBox's symbol keys dropped. */
const plain = (s: TSchema): Record<string, unknown> =>
  JSON.parse(JSON.stringify(s)) as Record<string, unknown>

/** Component name of a job type's params schema. */
export const paramsComponent = (t: AnyJobType): string => `${t.name}.v${t.version}.params`

function parameters(path: string, op: Operation): unknown[] {
  const out: unknown[] = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => ({
    name: m[1],
    in: 'path',
    required: true,
    schema: { type: 'string' },
  }))
  if (op.query !== undefined) {
    const q = plain(op.query)
    const props = (q['properties'] ?? {}) as Record<string, Record<string, unknown>>
    const required = (q['required'] ?? []) as string[]
    for (const [name, schema] of Object.entries(props))
      out.push({
        name,
        in: 'query',
        required: required.includes(name),
        ...(typeof schema['description'] === 'string' ? { description: schema['description'] } : {}),
        schema,
      })
  }
  return out
}

function operation(route: DocumentedRoute, op: Operation): Record<string, unknown> {
  const responses: Record<string, unknown> = {}
  for (const [status, ok] of Object.entries(op.ok)) {
    const content: Record<string, unknown> = {}
    for (const [type, schema] of Object.entries(ok.content ?? {}))
      content[type] = { schema: schema === undefined ? { type: 'string', format: 'binary' } : plain(schema) }
    responses[status] = { description: ok.description, ...(ok.content === undefined ? {} : { content }) }
  }
  for (const status of [...op.errors, 500])
    responses[String(status)] = { $ref: `#/components/responses/E${status}` }
  return {
    operationId: `${route.method.toLowerCase()}${route.path.replace(/[{}]/g, '').replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string | undefined) => (c ?? '').toUpperCase())}`,
    summary: op.summary,
    tags: [op.tag],
    security: op.auth ? [{ bearer: [] }] : [],
    parameters: parameters(route.path, op),
    ...(op.body === undefined
      ? {}
      : {
          requestBody: {
            required: true,
            content: { [op.body.type]: { schema: plain(op.body.schema) } },
          },
        }),
    responses,
  }
}

export function openApiDocument(
  routes: readonly DocumentedRoute[],
  jobTypes: Iterable<AnyJobType>,
  version: string,
): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {}
  const statuses = new Set<number>([500])
  for (const route of routes) {
    const op = OPERATIONS[`${route.method} ${route.path}`]
    if (op === undefined)
      throw new Error(`route ${route.method} ${route.path} has no entry in coordinator/schema/operations.ts`)
    for (const s of op.errors) statuses.add(s)
    ;(paths[route.path] ??= {})[route.method.toLowerCase()] = operation(route, op)
  }
  const schemas: Record<string, unknown> = { Problem: plain(problemSchema) }
  const types = [...jobTypes]
  for (const t of types)
    schemas[paramsComponent(t)] = { description: t.description, ...plain(t.paramsSchema) }
  const responses: Record<string, unknown> = {}
  for (const s of [...statuses].sort())
    responses[`E${s}`] = {
      description: TITLES[s] ?? 'Error',
      content: { [PROBLEM_TYPE]: { schema: { $ref: '#/components/schemas/Problem' } } },
    }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Cohort coordinator API',
      version,
      description:
        'Submit compute jobs, follow them and read their validated results. Errors are application/problem+json (RFC 9457); ' +
        `a refused field is named in \`field\`. Job params: ${types.map((t) => `${t.name}@${t.version} (#/components/schemas/${paramsComponent(t)})`).join(', ')}.`,
    },
    jsonSchemaDialect: 'https://spec.openapis.org/oas/3.1/dialect/base',
    tags: ['jobs', 'uploads', 'volunteers', 'system'].map((name) => ({ name })),
    paths,
    components: {
      schemas,
      responses,
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'An API key' } },
    },
  }
}
