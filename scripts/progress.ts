// Watching a job from its event stream: a progress bar with units/s and an ETA on a terminal, a
// line per 10 % elsewhere.
import type { JobHandle } from '../client/index.js'
import type { JobStateName, UnitCounts } from '../shared/index.js'

/** Units per second over the last `windowMs` of validated units. */
export class Rate {
  readonly #seen: { at: number; validated: number }[] = []
  constructor(readonly windowMs = 10_000) {}

  /** Record the validated count at `at` (ms). */
  add(at: number, validated: number): void {
    this.#seen.push({ at, validated })
    while (this.#seen.length > 2 && (this.#seen[0]?.at ?? at) < at - this.windowMs) this.#seen.shift()
  }

  /** Units per second, or undefined before two samples apart in time. */
  perSecond(): number | undefined {
    const first = this.#seen[0]
    const last = this.#seen[this.#seen.length - 1]
    if (first === undefined || last === undefined || last.at <= first.at) return undefined
    return ((last.validated - first.validated) * 1000) / (last.at - first.at)
  }
}

/** `1h02m`, `3m05s`, `12s`. */
export function duration(s: number): string {
  const t = Math.max(0, Math.round(s))
  const h = Math.floor(t / 3600)
  const m = Math.floor((t % 3600) / 60)
  const sec = t % 60
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`
  if (m > 0) return `${m}m${String(sec).padStart(2, '0')}s`
  return `${sec}s`
}

/** The bar: fraction, counts, units/s and ETA when known, and the state. */
export function progressLine(
  c: UnitCounts,
  state: JobStateName | undefined,
  perSecond?: number,
  width = 30,
): string {
  const fraction = state === 'completed' ? 1 : c.total === 0 ? 0 : c.validated / c.total
  const filled = Math.round(fraction * width)
  const pct = (fraction * 100).toFixed(1).padStart(5)
  const left = c.total - c.validated - c.failed
  const speed =
    perSecond === undefined || perSecond <= 0
      ? ''
      : `  ${perSecond < 10 ? perSecond.toFixed(2) : perSecond.toFixed(0)} units/s` +
        (left > 0 ? `  ETA ${duration(left / perSecond)}` : '')
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${pct}%  ${c.validated}/${c.total} units validated${speed}  (${state ?? 'queued'})`
}

/** When an event was written: the milliseconds of its id (`<ms>-<seq>`), undefined without one. */
function eventTime(id: string): number | undefined {
  const ms = Number(id.split('-')[0])
  return id === '' || id === '0-0' || !Number.isFinite(ms) ? undefined : ms
}

/**
 * Follow the job's events until it ends; returns its final state. `signal` stops watching early.
 * Units/s are measured on the events' own times (their ids), so a replay of past events is timed
 * as it happened.
 */
export async function watchJob(
  job: JobHandle,
  out: NodeJS.WritableStream & { isTTY?: boolean },
  signal?: AbortSignal,
): Promise<JobStateName | undefined> {
  const tty = out.isTTY === true
  const rate = new Rate()
  let lastDecile = -1
  const show = (): void => {
    const line = progressLine(job.counts, job.state, rate.perSecond())
    if (tty) {
      out.write(`\r${line}`)
      return
    }
    const { validated, total } = job.counts
    const decile = total === 0 ? 0 : Math.floor((validated / total) * 10)
    const final = job.state === 'completed' || job.state === 'failed' || job.state === 'cancelled'
    if (decile !== lastDecile || final) out.write(`${line}\n`)
    lastDecile = decile
  }
  job.on('progress', (c) => {
    const at = eventTime(job.lastEventId)
    if (at !== undefined) rate.add(at, c.validated)
    show()
  })
  job.on('state', () => show())
  const stop = (): void => job.close()
  signal?.addEventListener('abort', stop)
  try {
    return await job.done()
  } catch (err) {
    if (signal?.aborted === true) return job.state
    throw err
  } finally {
    signal?.removeEventListener('abort', stop)
    if (tty) out.write('\n')
  }
}
