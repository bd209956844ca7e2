// Live job events for submitters: each GET /v1/jobs/:id/events is a Server-Sent Events stream fed
// from the job's event log in Redis (store/event-scripts.ts) by XREAD BLOCK on a connection of its
// own, so a coordinator streams events that any coordinator wrote. Streams are bounded in number,
// send a comment when idle (proxies keep the connection), end when the client goes, after a longest
// duration (the client resumes with Last-Event-ID), or when the coordinator stops.
import type { Redis } from 'ioredis'
import { PassThrough } from 'node:stream'
import {
  compareStreamIds,
  errorFields,
  eventFromEntry,
  type JobEvent,
  type JobStateName,
  type Logger,
} from '../shared/index.js'
import { eventsKey } from './store/event-scripts.js'
import { duplicateRedis } from './redis-connection.js'

export interface EventStreamsInit {
  /** Duplicated for each stream (a blocking read holds its connection). */
  redis: Redis
  prefix: string
  /** Streams open at once, at most; more are refused (503). */
  maxStreams: number
  /** An idle stream sends a comment this often. */
  heartbeatMs: number
  /** A stream ends after this long; the client resumes with Last-Event-ID. */
  maxDurationMs: number
  log: Logger
}

/** Where a new stream starts, and the job as it is now (for a snapshot after trimmed events). */
export interface StreamStart {
  jobId: string
  /** The last event id the client has ('0-0': from the first event). */
  after: string
  now: () => Promise<{ state: JobStateName; validated: number; failed: number; total: number } | undefined>
}

/** Entries read per XREAD. */
const BATCH = 256
/** Clients reconnect after this long (the SSE `retry:` field). */
const RETRY_MS = 1_000

export interface EventStreams {
  /** Whether another stream may open now. */
  hasRoom(): boolean
  /** Open a stream: its body, and `close` for when the client goes. It also ends by itself. */
  open(start: StreamStart): { body: PassThrough; close: () => void }
  /** Streams open now. */
  readonly size: number
  /** End every stream and wait (bounded by `waitMs`) for their connections to close. */
  stop(waitMs: number): Promise<void>
}

/** One SSE event as text. */
export function sseFrame(e: JobEvent): string {
  return `${e.id === '' ? '' : `id: ${e.id}\n`}event: ${e.type}\ndata: ${JSON.stringify(e.data)}\n\n`
}

/** One open stream: its connection and body; `stopped` once the client went or the coordinator stops. */
interface Open {
  conn: Redis
  out: PassThrough
  stopped: boolean
}

export function createEventStreams(init: EventStreamsInit): EventStreams {
  const { log } = init
  const streams = new Map<Open, Promise<void>>()

  const stopOne = (s: Open): void => {
    s.stopped = true
    // A blocked XREAD returns at once (with an error) when its connection goes.
    s.conn.disconnect()
  }

  const write = async (s: Open, text: string): Promise<void> => {
    if (s.out.write(text) || s.stopped) return
    await new Promise<void>((resolve) => {
      s.out.once('drain', resolve)
      s.out.once('close', resolve)
    })
  }

  /** Where to read from: `after`, or past trimmed entries (a snapshot sent first). */
  const resume = async (s: Open, key: string, start: StreamStart): Promise<string> => {
    const info = (await s.conn.call('XINFO', 'STREAM', key).catch(() => null)) as unknown[] | null
    const i = info?.indexOf('max-deleted-entry-id') ?? -1
    const deleted = i >= 0 ? String(info?.[i + 1]) : '0-0'
    if (compareStreamIds(start.after, deleted) >= 0) return start.after
    const now = await start.now()
    if (now !== undefined) await write(s, sseFrame({ type: 'snapshot', id: '', data: now }))
    return deleted
  }

  const run = async (s: Open, start: StreamStart): Promise<void> => {
    const key = eventsKey(init.prefix, start.jobId)
    const deadline = Date.now() + init.maxDurationMs
    try {
      await s.conn.connect()
      await write(s, `retry: ${RETRY_MS}\n: job ${start.jobId}\n\n`)
      let after = await resume(s, key, start)
      while (!s.stopped) {
        const left = deadline - Date.now()
        if (left <= 0) break
        const block = Math.max(1, Math.min(init.heartbeatMs, left))
        const res = await s.conn.xread('COUNT', BATCH, 'BLOCK', block, 'STREAMS', key, after)
        const entries = res?.[0]?.[1] ?? []
        if (entries.length === 0) {
          await write(s, ': keep-alive\n\n')
          continue
        }
        let text = ''
        for (const [id, fields] of entries) {
          after = id
          try {
            text += sseFrame(eventFromEntry(id, fields))
          } catch (err) {
            log.warn('malformed job event skipped', { jobId: start.jobId, id, ...errorFields(err) })
          }
        }
        await write(s, text)
      }
    } catch (err) {
      if (!s.stopped) log.warn('event stream failed', { jobId: start.jobId, ...errorFields(err) })
    } finally {
      s.conn.disconnect()
      s.out.end()
    }
  }

  return {
    hasRoom: () => streams.size < init.maxStreams,
    get size() {
      return streams.size
    },
    open(start) {
      const conn = duplicateRedis(init.redis, {
        lazyConnect: true,
        maxRetriesPerRequest: 1,
        enableAutoPipelining: false,
      })
      conn.on('error', (err: unknown) => log.debug('event stream redis error', errorFields(err)))
      const s: Open = { conn, out: new PassThrough(), stopped: false }
      const done = run(s, start).finally(() => streams.delete(s))
      streams.set(s, done)
      return { body: s.out, close: () => stopOne(s) }
    },
    async stop(waitMs) {
      for (const s of streams.keys()) stopOne(s)
      let timer: ReturnType<typeof setTimeout> | undefined
      await Promise.race([
        Promise.allSettled([...streams.values()]),
        new Promise((r) => (timer = setTimeout(r, waitMs))),
      ])
      clearTimeout(timer)
    },
  }
}
