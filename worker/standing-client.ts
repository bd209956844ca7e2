// A volunteer's standing as its coordinator records it: GET /v1/volunteers/:id (credit, units, name,
// team), and the signed claim of a name and team (POST /v1/volunteers/claims). Runs in Node and in
// browsers (fetch, WebCrypto): the daemon's status file, `cohort worker claim` and the contribute page
// use it, so all of them show the coordinator's credit.
import {
  CohortError,
  parseVolunteerRecord,
  signClaim,
  type Identity,
  type VolunteerRecord,
} from '../shared/index.js'

/** A refusal or failure of the coordinator; `field` names what it refused, when it said. */
export class StandingError extends CohortError {
  override name = 'StandingError'
  constructor(
    message: string,
    readonly status?: number,
    readonly field?: string,
    options: { cause?: unknown } = {},
  ) {
    super(message, options)
  }
}

export interface StandingOptions {
  /** Each request's time limit. Default 10000 ms. */
  timeoutMs?: number
  signal?: AbortSignal
}

async function call(
  coordinatorUrl: string,
  path: string,
  init: RequestInit,
  o: StandingOptions,
): Promise<unknown> {
  const timeoutMs = o.timeoutMs ?? 10_000
  const timeout = AbortSignal.timeout(timeoutMs)
  const signal = o.signal === undefined ? timeout : AbortSignal.any([o.signal, timeout])
  const url = new URL(path, coordinatorUrl.endsWith('/') ? coordinatorUrl : `${coordinatorUrl}/`)
  let response: Response
  try {
    response = await fetch(url, { ...init, signal })
  } catch (err) {
    if (o.signal?.aborted === true) throw err
    throw new StandingError(
      (err as Error).name === 'TimeoutError'
        ? `the coordinator at ${coordinatorUrl} did not answer within ${timeoutMs} ms`
        : `cannot reach the coordinator at ${coordinatorUrl}`,
      undefined,
      undefined,
      { cause: err },
    )
  }
  const body = (await response.json().catch(() => undefined)) as unknown
  if (!response.ok) {
    const problem = (body ?? {}) as { detail?: unknown; field?: unknown }
    throw new StandingError(
      `the coordinator refused (${response.status}): ${typeof problem.detail === 'string' ? problem.detail : response.statusText}`,
      response.status,
      typeof problem.field === 'string' ? problem.field : undefined,
    )
  }
  return body
}

/** The coordinator's record of identity `id`; undefined when it knows no such identity (404). */
export async function fetchStanding(
  coordinatorUrl: string,
  id: string,
  o: StandingOptions = {},
): Promise<VolunteerRecord | undefined> {
  try {
    return parseVolunteerRecord(
      await call(coordinatorUrl, `v1/volunteers/${encodeURIComponent(id)}`, { method: 'GET' }, o),
    )
  } catch (err) {
    if (err instanceof StandingError && err.status === 404) return undefined
    throw err
  }
}

/** Signs and sends a claim of `name` (and `team`) for `identity`; answers the record as claimed. */
export async function claimStanding(
  coordinatorUrl: string,
  identity: Identity,
  claim: { name: string; team?: string | undefined },
  o: StandingOptions = {},
): Promise<VolunteerRecord> {
  const request = await signClaim(identity, claim)
  return parseVolunteerRecord(
    await call(
      coordinatorUrl,
      'v1/volunteers/claims',
      { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) },
      o,
    ),
  )
}
