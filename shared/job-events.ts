// A job's events, as GET /v1/jobs/:id/events streams them (Server-Sent Events): defined once, for the
// coordinator that writes them and the client that reads them. Each event's SSE id is its entry id
// in the job's event log (a Redis Stream id, `<ms>-<seq>`), so a client resumes with Last-Event-ID.
import { ProtocolError } from './errors.js'

/** A job's states (`revising`: a completed job's result is being recomputed after backtracking). */
export type JobStateName = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled' | 'revising'

/** The states a job leaves only through backtracking (`completed`) or never. */
export const FINAL_STATES: ReadonlySet<JobStateName> = new Set(['completed', 'failed', 'cancelled'])

/** Unit counts after an event. */
export interface UnitCounts {
  validated: number
  failed: number
  total: number
}

/** Every event, by its SSE `event:` name, with its data. */
export interface JobEventMap {
  /** The job changed state (`error` says why it failed). */
  state: { state: JobStateName; error?: string }
  /** A unit was validated: its index, and the counts after it. */
  unit: UnitCounts & { index: number }
  /** The counts changed otherwise: the job was split into `total` units, or a unit was reopened. */
  progress: UnitCounts
  /** The result is ready (GET /v1/jobs/:id/result). */
  result: Record<string, never>
  /** A revision of the result was merged after backtracking; `changed` when it differs from before. */
  revised: { changed: boolean; revisions: number; units: number }
  /**
   * Sent (without an id) when events between the client's position and the log's oldest entry were
   * trimmed: the job as it is now, so the client's view is whole again.
   */
  snapshot: UnitCounts & { state: JobStateName }
}

export type JobEventType = keyof JobEventMap

export type JobEvent = {
  [K in JobEventType]: { type: K; /** The SSE id ('' for a snapshot). */ id: string; data: JobEventMap[K] }
}[JobEventType]

/** A stream entry id: milliseconds and a sequence number. */
export const STREAM_ID = /^(\d{1,20})-(\d{1,20})$/

/** Compare two stream ids (<0, 0, >0). */
export function compareStreamIds(a: string, b: string): number {
  const ma = STREAM_ID.exec(a)
  const mb = STREAM_ID.exec(b)
  if (ma === null || mb === null) throw new ProtocolError(`not a stream id: "${ma === null ? a : b}"`)
  const d = BigInt(ma[1] ?? 0) - BigInt(mb[1] ?? 0) || BigInt(ma[2] ?? 0) - BigInt(mb[2] ?? 0)
  return d < 0n ? -1 : d > 0n ? 1 : 0
}

/** Every job state. */
export const JOB_STATES: ReadonlySet<string> = new Set([
  'queued',
  'running',
  'completed',
  'failed',
  'cancelled',
  'revising',
])

function count(v: unknown, what: string): number {
  const n = typeof v === 'string' ? Number(v) : v
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < -1)
    throw new ProtocolError(`job event: ${what} must be a count, got ${JSON.stringify(v)}`)
  return n
}

function counts(r: Record<string, unknown>): UnitCounts {
  return {
    validated: count(r['validated'], 'validated'),
    failed: count(r['failed'], 'failed'),
    total: count(r['total'], 'total'),
  }
}

function stateOf(v: unknown): JobStateName {
  if (typeof v !== 'string' || !JOB_STATES.has(v))
    throw new ProtocolError(`job event: unknown state ${JSON.stringify(v)}`)
  return v as JobStateName
}

/**
 * An event from its type and fields: a log entry's fields (strings, as stored) or an SSE event's
 * parsed data. Unknown types and malformed fields throw a ProtocolError.
 */
export function toJobEvent(type: string, id: string, r: Record<string, unknown>): JobEvent {
  switch (type) {
    case 'state': {
      const state = stateOf(r['state'])
      const error = r['error']
      return { type, id, data: typeof error === 'string' && error !== '' ? { state, error } : { state } }
    }
    case 'unit':
      return { type, id, data: { index: count(r['index'], 'index'), ...counts(r) } }
    case 'progress':
      return { type, id, data: counts(r) }
    case 'result':
      return { type, id, data: {} }
    case 'revised':
      return {
        type,
        id,
        data: {
          changed: r['changed'] === true || r['changed'] === '1',
          revisions: count(r['revisions'], 'revisions'),
          units: count(r['units'], 'units'),
        },
      }
    case 'snapshot':
      return { type, id, data: { state: stateOf(r['state']), ...counts(r) } }
    default:
      throw new ProtocolError(`job event: unknown type ${JSON.stringify(type)}`)
  }
}

/** A log entry's flat field list (`type`, then name/value pairs) as an event. */
export function eventFromEntry(id: string, flat: string[]): JobEvent {
  const r: Record<string, string> = {}
  for (let i = 0; i + 1 < flat.length; i += 2) r[flat[i] as string] = flat[i + 1] as string
  return toJobEvent(r['type'] ?? '', id, r)
}
