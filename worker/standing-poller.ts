// The daemon asks its coordinator for its own record (GET /v1/volunteers/:id) now and then, so that
// the status file — and `cohort worker status` — show the credit the coordinator recorded, the same
// number as the leaderboard and the /stats page. Runs in Node and browsers.
import { errorFields, type Logger, type VolunteerRecord } from '../shared/index.js'
import { fetchStanding } from './standing-client.js'

export interface StandingPollerInit {
  coordinatorUrl: string
  /** The identity whose record is read. */
  id: string
  log: Logger
  /** How often, ms. Default 30000. */
  everyMs?: number
  /** Each request's time limit, ms. Default 10000. */
  timeoutMs?: number
  /** Told after each record read. */
  onRead?: (record: VolunteerRecord) => void
}

export interface StandingPoller {
  start(): void
  /** Stops the timer and aborts a request under way. */
  stop(): void
  /** Reads the record now (also on the timer); resolves once it is read or failed. */
  refresh(): Promise<void>
  /** The latest record read, and when; undefined before the first answer. */
  readonly last: { record: VolunteerRecord; at: number } | undefined
}

export function createStandingPoller(init: StandingPollerInit): StandingPoller {
  const everyMs = init.everyMs ?? 30_000
  let last: { record: VolunteerRecord; at: number } | undefined
  let timer: ReturnType<typeof setInterval> | undefined
  let abort = new AbortController()
  let running: Promise<void> | undefined

  const refresh = (): Promise<void> => {
    running ??= (async () => {
      try {
        const record = await fetchStanding(init.coordinatorUrl, init.id, {
          signal: abort.signal,
          timeoutMs: init.timeoutMs ?? 10_000,
        })
        if (record !== undefined) {
          last = { record, at: Date.now() }
          init.onRead?.(record)
        }
      } catch (err) {
        if (!abort.signal.aborted) init.log.debug("could not read this identity's credit", errorFields(err))
      } finally {
        running = undefined
      }
    })()
    return running
  }

  return {
    start() {
      if (timer !== undefined) return
      abort = new AbortController()
      void refresh()
      timer = setInterval(() => void refresh(), everyMs)
      timer.unref?.()
    },
    stop() {
      clearInterval(timer)
      timer = undefined
      abort.abort()
    },
    refresh,
    get last() {
      return last
    },
  }
}
