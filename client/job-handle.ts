// A submitted job, followed through its events: `progress`, `unit`, `state`, `revised` as they
// happen (from the first event, whenever the first listener comes), and `result()` once it is ready.
import {
  CohortError,
  Emitter,
  FINAL_STATES,
  type JobEvent,
  type JobEventMap,
  type JobStateName,
  type JobView,
  type ResultView,
  type UnitCounts,
} from '../shared/index.js'
import { followEvents, type FollowOptions } from './events.js'
import type { Transport } from './http.js'

/** A job's events, as a JobHandle emits them. */
export type JobHandleEvents = {
  /** Every event, as it arrives (after the handle's own view took it in). */
  event: [JobEvent]
  /** The job changed state; `error` says why it failed. */
  state: [state: JobStateName, error: string | undefined]
  /** Unit counts changed: a unit was validated, the job was split, or a unit was reopened. */
  progress: [UnitCounts]
  /** A unit was validated (its index), and the counts after it. */
  unit: [index: number, counts: UnitCounts]
  /** The result is ready. */
  result: []
  /** A revision of the result was merged after backtracking. */
  revised: [JobEventMap['revised']]
  /** The event stream broke and is opened again after `lastEventId`. */
  reconnect: [lastEventId: string, cause: unknown]
  /** Following ended for good (the job is gone, or the coordinator stayed unreachable). */
  error: [Error]
}

/** The job ended without a result (failed or cancelled). */
export class JobFailedError extends CohortError {
  override name = 'JobFailedError'
  constructor(
    readonly jobId: string,
    readonly state: JobStateName,
    readonly reason?: string,
  ) {
    super(`job ${jobId} ${state}${reason === undefined ? '' : `: ${reason}`}`)
  }
}

export interface JobHandleOptions extends Omit<FollowOptions, 'onReconnect'> {
  /**
   * Keep following after the job ends, for revisions of its result (backtracking), until close().
   * Default false: following stops at the job's first final state.
   */
  untilClosed?: boolean
}

export class JobHandle<R = unknown> extends Emitter<JobHandleEvents> {
  /** The state as last seen (undefined before the first event). */
  state: JobStateName | undefined
  /** Why it failed, once it did. */
  error: string | undefined
  /** Unit counts as last seen. */
  counts: UnitCounts = { validated: 0, failed: 0, total: 0 }
  /** The id of the last event seen: follow from here after a restart. */
  lastEventId: string
  readonly #t: Transport
  readonly #opts: JobHandleOptions
  readonly #stop = new AbortController()
  #started = false
  #final: { resolve: (s: JobStateName) => void; reject: (e: Error) => void; promise: Promise<JobStateName> }

  constructor(
    t: Transport,
    /** The job's id. */
    readonly id: string,
    /** The job as submitted (POST /v1/jobs answered it), when this handle submitted it. */
    readonly view: JobView | undefined,
    opts: JobHandleOptions = {},
  ) {
    super()
    this.#t = t
    this.#opts = opts
    this.lastEventId = opts.after ?? '0-0'
    let resolve!: (s: JobStateName) => void
    let reject!: (e: Error) => void
    const promise = new Promise<JobStateName>((res, rej) => {
      resolve = res
      reject = rej
    })
    // Nobody may ask; a failure is still reported through done() and `error` listeners.
    promise.catch(() => {})
    this.#final = { resolve, reject, promise }
  }

  /** Listening starts following the job's events (from its first, or from `after`). */
  override on<K extends keyof JobHandleEvents>(
    event: K,
    listener: (...args: JobHandleEvents[K]) => void,
  ): this {
    super.on(event, listener)
    this.follow()
    return this
  }

  /** Start following the job's events, if not yet. */
  follow(): this {
    if (!this.#started) {
      this.#started = true
      void this.#run()
    }
    return this
  }

  /** Resolves with the job's final state (completed, failed or cancelled). */
  done(): Promise<JobStateName> {
    this.follow()
    return this.#final.promise
  }

  /** The job's result, once completed; rejects with JobFailedError when it failed or was cancelled. */
  async result(): Promise<R> {
    const state = await this.done()
    if (state !== 'completed') throw new JobFailedError(this.id, state, this.error)
    return (await this.resultView()).result
  }

  /** GET /v1/jobs/:id/result: the result and whether it is being revised. */
  resultView(): Promise<ResultView<R>> {
    return this.#t.json('GET', `/v1/jobs/${encodeURIComponent(this.id)}/result`)
  }

  /** GET /v1/jobs/:id: the job as it is now. */
  refresh(): Promise<JobView> {
    return this.#t.json('GET', `/v1/jobs/${encodeURIComponent(this.id)}`)
  }

  /** Cancel the job (DELETE /v1/jobs/:id). */
  cancel(): Promise<JobView> {
    return this.#t.json('DELETE', `/v1/jobs/${encodeURIComponent(this.id)}`)
  }

  /** Stop following; done() rejects if the job had not ended. */
  close(): void {
    this.#stop.abort(new CohortError(`stopped following job ${this.id}`))
  }

  #apply(ev: JobEvent): void {
    switch (ev.type) {
      case 'state':
        this.state = ev.data.state
        if (ev.data.error !== undefined) this.error = ev.data.error
        this.emit('state', ev.data.state, ev.data.error)
        break
      case 'unit': {
        const { index, ...counts } = ev.data
        this.counts = counts
        this.emit('unit', index, counts)
        this.emit('progress', counts)
        break
      }
      case 'progress':
        this.counts = ev.data
        this.emit('progress', ev.data)
        break
      case 'snapshot': {
        const { state, ...counts } = ev.data
        this.counts = counts
        this.emit('progress', counts)
        if (state !== this.state) {
          this.state = state
          this.emit('state', state, undefined)
        }
        break
      }
      case 'result':
        this.emit('result')
        break
      case 'revised':
        this.emit('revised', ev.data)
        break
    }
    this.emit('event', ev)
  }

  async #run(): Promise<void> {
    try {
      const events = followEvents(this.#t, this.id, {
        ...this.#opts,
        after: this.lastEventId,
        signal:
          this.#opts.signal === undefined
            ? this.#stop.signal
            : AbortSignal.any([this.#opts.signal, this.#stop.signal]),
        onReconnect: (after, cause) => this.emit('reconnect', after, cause),
      })
      for await (const ev of events) {
        if (ev.id !== '') this.lastEventId = ev.id
        this.#apply(ev)
        const final = this.state !== undefined && FINAL_STATES.has(this.state)
        if (final && (ev.type === 'state' || ev.type === 'snapshot')) {
          this.#final.resolve(this.state as JobStateName)
          if (this.#opts.untilClosed !== true) return
        }
      }
      this.#final.reject(new CohortError(`stopped following job ${this.id} before it ended`))
    } catch (err) {
      const e = err instanceof Error ? err : new CohortError(String(err))
      this.#final.reject(e)
      this.emit('error', e)
    }
  }
}
