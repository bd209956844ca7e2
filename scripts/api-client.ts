// A small client of the coordinator's HTTP API, used by the CLI and the demo.
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

export interface JobView {
  id: string
  type: string
  state: 'queued' | 'running' | 'completed' | 'failed' | 'cancelled'
  units: { total: number; validated: number; failed: number; pending: number; planned: boolean }
  progress: number
  extraReplicas: number
  error?: string
}

export interface ApiClient {
  submit(body: unknown): Promise<JobView>
  job(id: string): Promise<JobView>
  result(id: string): Promise<{ result: unknown }>
  cancel(id: string): Promise<JobView>
  jobTypes(): Promise<{ jobTypes: { name: string; version: number; description: string }[] }>
}

export function createApiClient(baseUrl: string, apiKey?: string, timeoutMs = 10_000): ApiClient {
  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const headers: Record<string, string> = { accept: 'application/json' }
    if (apiKey !== undefined) headers['authorization'] = `Bearer ${apiKey}`
    if (body !== undefined) headers['content-type'] = 'application/json'
    let res: Response
    try {
      res = await fetch(new URL(path, baseUrl), {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(timeoutMs),
      })
    } catch (err) {
      if ((err as Error).name === 'TimeoutError')
        throw new TimeoutError(`${method} ${path} took longer than ${timeoutMs} ms`)
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
  }
}
