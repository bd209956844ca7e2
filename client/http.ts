// The client's one way to call the coordinator: fetch with an API key, a timeout on every call,
// problem+json errors as ApiError, and GETs refused with 429 tried again after their Retry-After.
import { CohortError, TimeoutError } from '../shared/index.js'

const text = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v ?? ''))

/** The coordinator refused a request: its HTTP status and its problem+json body. */
export class ApiError extends CohortError {
  override name = 'ApiError'
  constructor(
    readonly status: number,
    readonly problem: Record<string, unknown>,
  ) {
    super(`${status} ${text(problem['title'])}: ${text(problem['detail'])}`)
  }

  /** The problem's code (`job-not-found`, `quota-exceeded`, ...), from its `type`. */
  get code(): string {
    return text(this.problem['type']).replace(/^urn:cohort:problem:/, '')
  }

  /** The field a 422 names, when it names one. */
  get field(): string | undefined {
    const f = this.problem['field']
    return typeof f === 'string' ? f : undefined
  }
}

/** The coordinator could not be reached (or the connection broke). */
export class ConnectionError extends CohortError {
  override name = 'ConnectionError'
}

export interface CallOptions {
  /** A JSON body. */
  json?: unknown
  /** A raw body and its Content-Type. */
  raw?: { type: string; body: BodyInit; stream: boolean }
  headers?: Record<string, string>
  /** This call's timeout; 0: none (the caller's `signal` ends it). */
  timeoutMs?: number
  signal?: AbortSignal
}

export interface Transport {
  readonly url: string
  /** Call and parse the JSON answer; throws ApiError, ConnectionError or TimeoutError. */
  json<T>(method: string, path: string, opts?: CallOptions): Promise<T>
  /** Call and return the response when it is OK (for streams); throws like `json`. */
  open(method: string, path: string, opts?: CallOptions): Promise<Response>
}

export interface TransportInit {
  url: string
  apiKey?: string
  /** Each call's timeout, unless the call sets its own. */
  timeoutMs: number
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch
  /** A GET refused with 429 is tried again this many times, after its Retry-After (at most 60 s). */
  retries: number
}

const MAX_RETRY_AFTER_S = 60

/** A signal that aborts on `signal` or after `ms` (0: only on `signal`). */
export function deadlineSignal(ms: number, signal?: AbortSignal): AbortSignal | undefined {
  if (ms === 0) return signal
  const timeout = AbortSignal.timeout(ms)
  return signal === undefined ? timeout : AbortSignal.any([signal, timeout])
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) return reject(signal.reason as Error)
    const timer = setTimeout(resolve, ms)
    signal?.addEventListener('abort', () => {
      clearTimeout(timer)
      reject(signal.reason as Error)
    })
  })
}

export function createTransport(init: TransportInit): Transport {
  const doFetch = init.fetch ?? globalThis.fetch.bind(globalThis)
  const base = init.url.endsWith('/') ? init.url : `${init.url}/`

  const once = async (method: string, path: string, opts: CallOptions): Promise<Response> => {
    const headers: Record<string, string> = { accept: 'application/json', ...opts.headers }
    if (init.apiKey !== undefined) headers['authorization'] = `Bearer ${init.apiKey}`
    let body: BodyInit | undefined
    if (opts.json !== undefined) {
      headers['content-type'] = 'application/json'
      body = JSON.stringify(opts.json)
    } else if (opts.raw !== undefined) {
      headers['content-type'] = opts.raw.type
      body = opts.raw.body
    }
    const ms = opts.timeoutMs ?? init.timeoutMs
    let res: Response
    try {
      res = await doFetch(new URL(path.replace(/^\//, ''), base), {
        method,
        headers,
        ...(body === undefined ? {} : { body }),
        ...(opts.raw?.stream === true ? { duplex: 'half' } : {}),
        signal: deadlineSignal(ms, opts.signal) ?? null,
      })
    } catch (err) {
      if (opts.signal?.aborted === true) throw opts.signal.reason as Error
      if ((err as Error).name === 'TimeoutError')
        throw new TimeoutError(`${method} ${path} took longer than ${ms} ms`)
      throw new ConnectionError(`cannot reach the coordinator at ${init.url}: ${(err as Error).message}`, {
        cause: err,
      })
    }
    if (res.ok) return res
    const problem = (await res.json().catch(() => ({ detail: res.statusText }))) as Record<string, unknown>
    throw new ApiError(res.status, problem)
  }

  const open = async (method: string, path: string, opts: CallOptions = {}): Promise<Response> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await once(method, path, opts)
      } catch (err) {
        if (!(err instanceof ApiError) || err.status !== 429 || method !== 'GET' || attempt >= init.retries)
          throw err
        const s = Math.min(MAX_RETRY_AFTER_S, Math.max(1, Number(err.problem['retryAfter']) || 1))
        await sleep(s * 1000, opts.signal)
      }
    }
  }

  return {
    url: init.url,
    open,
    async json<T>(method: string, path: string, opts: CallOptions = {}): Promise<T> {
      const res = await open(method, path, opts)
      try {
        return (await res.json()) as T
      } catch (err) {
        throw new ConnectionError(`${method} ${path}: the answer is not JSON`, { cause: err })
      }
    },
  }
}

export { sleep }
