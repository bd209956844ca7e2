// Following a job's events (GET /v1/jobs/:id/events) with fetch streaming: each event once, in
// order, across disconnects — the stream is opened again with Last-Event-ID after a break, after
// the server ends it, or after it stays silent past the idle timeout.
import { ProtocolError, TimeoutError, toJobEvent, type JobEvent } from '../shared/index.js'
import { ApiError, ConnectionError, sleep, type Transport } from './http.js'
import { readSse } from './sse.js'

export interface FollowOptions {
  /** The last event id already seen: events after it only (default: from the first event). */
  after?: string
  /** Stops following. */
  signal?: AbortSignal
  /** A stream that sends nothing (not even its heartbeat) this long is opened again. Default 60000 ms. */
  idleTimeoutMs?: number
  /** Opening the stream must answer within this long. Default 10000 ms. */
  connectTimeoutMs?: number
  /** Failed attempts in a row (without an event between them) before giving up. Default 10. */
  maxRetries?: number
  /** Called before each reconnection, with the last event id seen and what broke. */
  onReconnect?: (lastEventId: string, cause: unknown) => void
}

/** Reconnection delay when the server sent none; it grows with failures in a row, up to 30 s. */
const RETRY_MS = 1_000
const MAX_RETRY_MS = 30_000

/** Whether an error of opening the stream is worth trying again. */
function retriable(err: unknown): boolean {
  return !(err instanceof ApiError) || err.status === 429 || err.status >= 500
}

/** The job's events, from `after` on, until `signal` aborts or the consumer stops. */
export async function* followEvents(
  t: Transport,
  jobId: string,
  opts: FollowOptions = {},
): AsyncGenerator<JobEvent> {
  const idleMs = opts.idleTimeoutMs ?? 60_000
  const connectMs = opts.connectTimeoutMs ?? 10_000
  const maxRetries = opts.maxRetries ?? 10
  let after = opts.after ?? '0-0'
  let failures = 0
  let retryMs = RETRY_MS
  const path = `/v1/jobs/${encodeURIComponent(jobId)}/events`
  const aborted = (): boolean => opts.signal?.aborted === true
  while (!aborted()) {
    const ctl = new AbortController()
    const stop = (): void => ctl.abort(opts.signal?.reason)
    opts.signal?.addEventListener('abort', stop)
    let timer: ReturnType<typeof setTimeout> | undefined
    const arm = (ms: number, what: string): void => {
      clearTimeout(timer)
      timer = setTimeout(() => ctl.abort(new TimeoutError(what)), ms)
    }
    try {
      arm(connectMs, `the event stream of job ${jobId} did not open within ${connectMs} ms`)
      const res = await t.open('GET', path, {
        headers: { accept: 'text/event-stream', ...(after === '0-0' ? {} : { 'last-event-id': after }) },
        timeoutMs: 0,
        signal: ctl.signal,
      })
      if (res.body === null) throw new ConnectionError(`GET ${path} answered without a body`)
      const idle = `the event stream of job ${jobId} was silent for ${idleMs} ms`
      arm(idleMs, idle)
      const reader = readSse(res.body, () => arm(idleMs, idle))
      for await (const m of reader.messages()) {
        let data: unknown
        try {
          data = JSON.parse(m.data)
        } catch {
          throw new ProtocolError(`event ${m.id}: data is not JSON`)
        }
        if (typeof data !== 'object' || data === null)
          throw new ProtocolError(`event ${m.id}: data is not an object`)
        const ev = toJobEvent(m.event, m.id, data as Record<string, unknown>)
        if (m.id !== '') after = m.id
        failures = 0
        yield ev
      }
      retryMs = reader.retryMs ?? RETRY_MS
      // The server ended the stream (its longest duration): open it again at once.
      continue
    } catch (err) {
      if (aborted()) return
      const cause = ctl.signal.aborted && ctl.signal.reason instanceof Error ? ctl.signal.reason : err
      if (!retriable(cause)) throw cause
      failures++
      if (failures > maxRetries)
        throw new ConnectionError(`the event stream of job ${jobId} failed ${failures} times in a row`, {
          cause,
        })
      opts.onReconnect?.(after, cause)
      const wait = Math.min(MAX_RETRY_MS, retryMs * 2 ** (failures - 1))
      await sleep(wait, opts.signal).catch(() => {})
    } finally {
      clearTimeout(timer)
      opts.signal?.removeEventListener('abort', stop)
      ctl.abort()
    }
  }
}
