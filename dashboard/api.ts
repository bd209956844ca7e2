// The dashboard's calls to its coordinator: JSON from /v1/admin/*, with the admin key when one was
// given, each under a timeout. A refusal comes back as an ApiError with the problem's detail.
import type { Overview, UnitStatesView } from '../shared/ops-views.js'

export class ApiError extends Error {
  override name = 'ApiError'
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}

export interface Api {
  overview(signal?: AbortSignal): Promise<Overview>
  units(jobId: string, from: number, count: number, signal?: AbortSignal): Promise<UnitStatesView>
}

const TIMEOUT_MS = 10_000

export function createApi(key: () => string): Api {
  const get = async <T>(path: string, signal?: AbortSignal): Promise<T> => {
    const k = key()
    const timeout = AbortSignal.timeout(TIMEOUT_MS)
    const res = await fetch(path, {
      headers: k === '' ? {} : { authorization: `Bearer ${k}` },
      signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]),
    })
    if (!res.ok) {
      const problem = (await res.json().catch(() => ({}))) as { detail?: string }
      throw new ApiError(res.status, problem.detail ?? `${res.status} ${res.statusText}`)
    }
    return (await res.json()) as T
  }
  return {
    overview: (signal) => get<Overview>('/v1/admin/overview', signal),
    units: (jobId, from, count, signal) =>
      get<UnitStatesView>(
        `/v1/admin/jobs/${encodeURIComponent(jobId)}/units?from=${from}&count=${count}`,
        signal,
      ),
  }
}
