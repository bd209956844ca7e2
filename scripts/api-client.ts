// A small client of the coordinator's HTTP API, used by the CLI and the demo.
import { createReadStream } from 'node:fs'
import { Readable } from 'node:stream'
import { CohortError, TimeoutError } from '../shared/index.js'

const text = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v ?? ''))

export class ApiError extends CohortError {
  override name = 'ApiError'
  constructor(
    readonly status: number,
    readonly problem: Record<string, unknown>,
  ) {
    super(`${status} ${text(problem['title'])}: ${text(problem['detail'])}`)
  }
}

/** A revision of a job's result after backtracking (`changed` and `revisedAt` once merged again). */
export interface RevisionView {
  at: string
  reason: string
  units: number
  revisedAt?: string
  changed?: boolean
}

export interface JobView {
  id: string
  type: string
  state: 'queued' | 'running' | 'completed' | 'failed' | 'cancelled' | 'revising'
  /** The params as stored: the unit size the planner chose filled in. */
  params?: unknown
  units: { total: number; validated: number; failed: number; pending: number; planned: boolean }
  /** The planner's choice (docs/ARCHITECTURE.md, "Planner"). */
  plan?: {
    units: number
    unitSeconds: number
    by: 'explicit' | 'target' | 'spread' | 'floor' | 'fixed'
    speedFactor: number
    threads: number
  }
  progress: number
  extraReplicas: number
  /** How many agreeing results a unit needs, and how credible they must be (docs/security.md). */
  redundancy: { quorum: number; maxReplicas: number; minCredibility: number; spotCheckRate: number }
  error?: string
  revisions?: RevisionView[]
}

/** What POST /v1/datasets answers. */
export interface DatasetView {
  root: string
  size: number
  chunks: number
  chunkSize: number
  uploadedAt: string
  links: { self: string; data: string }
}

/** A body sent as it is read, never held whole. */
interface RawBody {
  type: string
  stream: Readable
}

/** Uploads may take long; only a coordinator that stops answering altogether is given up on. */
const UPLOAD_TIMEOUT_MS = 3600_000

export interface ApiClient {
  submit(body: unknown): Promise<JobView>
  job(id: string): Promise<JobView>
  result(id: string): Promise<{ result: unknown; revising?: boolean; revisions?: RevisionView[] }>
  cancel(id: string): Promise<JobView>
  jobTypes(): Promise<{ jobTypes: { name: string; version: number; description: string }[] }>
  /** Stream the file at `path` to POST /v1/datasets. */
  uploadDataset(path: string): Promise<DatasetView>
}

/** A GET refused with 429 is tried again after its Retry-After (at most this long), this many times. */
const MAX_RETRY_AFTER_S = 60
const GET_RETRIES = 5

export function createApiClient(baseUrl: string, apiKey?: string, timeoutMs = 10_000): ApiClient {
  const call = async <T>(method: string, path: string, body?: unknown, raw?: RawBody): Promise<T> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await callOnce<T>(method, path, body, raw)
      } catch (err) {
        if (!(err instanceof ApiError) || err.status !== 429 || method !== 'GET' || attempt >= GET_RETRIES)
          throw err
        const s = Math.min(MAX_RETRY_AFTER_S, Math.max(1, Number(err.problem['retryAfter']) || 1))
        await new Promise((r) => setTimeout(r, s * 1000))
      }
    }
  }
  const callOnce = async <T>(method: string, path: string, body?: unknown, raw?: RawBody): Promise<T> => {
    const headers: Record<string, string> = { accept: 'application/json' }
    if (apiKey !== undefined) headers['authorization'] = `Bearer ${apiKey}`
    if (body !== undefined) headers['content-type'] = 'application/json'
    if (raw !== undefined) headers['content-type'] = raw.type
    const ms = raw === undefined ? timeoutMs : UPLOAD_TIMEOUT_MS
    let res: Response
    try {
      res = await fetch(new URL(path, baseUrl), {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        ...(raw === undefined ? {} : { body: Readable.toWeb(raw.stream) as ReadableStream, duplex: 'half' }),
        signal: AbortSignal.timeout(ms),
      })
    } catch (err) {
      if ((err as Error).name === 'TimeoutError')
        throw new TimeoutError(`${method} ${path} took longer than ${ms} ms`)
      throw new CohortError(`cannot reach the coordinator at ${baseUrl}: ${(err as Error).message}`, {
        cause: err,
      })
    }
    const json = (await res.json().catch(() => ({}))) as Record<string, unknown>
    if (!res.ok) throw new ApiError(res.status, json)
    return json as T
  }
  return {
    submit: (body) => call('POST', '/v1/jobs', body),
    job: (id) => call('GET', `/v1/jobs/${encodeURIComponent(id)}`),
    result: (id) => call('GET', `/v1/jobs/${encodeURIComponent(id)}/result`),
    cancel: (id) => call('DELETE', `/v1/jobs/${encodeURIComponent(id)}`),
    jobTypes: () => call('GET', '/v1/job-types'),
    uploadDataset: (file) =>
      call('POST', '/v1/datasets', undefined, {
        type: 'application/octet-stream',
        stream: createReadStream(file),
      }),
  }
}
