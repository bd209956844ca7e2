// The browser's Runner: a pool of Web Workers (dist/web/unit-worker.js), each running one unit at a
// time through comlink. Aborting a unit terminates its Web Worker (kernels cannot be interrupted
// otherwise) and a fresh one takes its place. The pool can grow and shrink while units run.
import { wrap, type Remote } from 'comlink'
import { builtinJobTypes } from '../jobs/index.js'
import { CohortError, ConfigError } from '../shared/index.js'
import type { Runner, RunOutcome, RunTask } from '../worker/portable.js'
import type { UnitWorkerApi } from './unit-worker-api.js'

/** Most Web Workers one pool keeps. */
export const MAX_THREADS = 256

export interface ComlinkRunnerInit {
  /** URL of the unit worker module (an ES module). */
  workerUrl: string | URL
  /** Web Workers to keep, 1..MAX_THREADS. */
  threads: number
  /** The kinds the unit worker module runs. Default: the built-in job types (dist/web/unit-worker.js). */
  kinds?: Iterable<string>
  /** Makes one Web Worker. Default: `new Worker(url, { type: 'module' })`. */
  createWorker?: (url: string | URL) => Worker
}

export interface ComlinkRunner extends Runner {
  /** Grow or shrink the pool; a busy Web Worker beyond the new size leaves when its unit ends. */
  setThreads(n: number): void
}

/** A Web Worker that died (failed to load, crashed, ran out of memory) while running a unit. */
export class UnitWorkerError extends CohortError {
  override name = 'UnitWorkerError'
}

interface Slot {
  worker: Worker
  api: Remote<UnitWorkerApi>
  busy: boolean
  /** Set while a unit runs: rejects it when the Web Worker dies. */
  fail?: (err: Error) => void
}

function checkThreads(n: number): number {
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_THREADS)
    throw new ConfigError(`threads must be an integer in 1..${MAX_THREADS}, got ${JSON.stringify(n)}`)
  return n
}

const abortError = (): Error => new DOMException('the unit was aborted', 'AbortError')

export function createComlinkRunner(init: ComlinkRunnerInit): ComlinkRunner {
  const createWorker =
    init.createWorker ?? ((url) => new Worker(url, { type: 'module', name: 'cohort-unit' }))
  let threads = checkThreads(init.threads)
  const kinds: ReadonlySet<string> = new Set(init.kinds ?? builtinJobTypes.keys())
  let closed = false
  const slots: Slot[] = []
  const waiters: (() => void)[] = []

  const retire = (slot: Slot): void => {
    const i = slots.indexOf(slot)
    if (i >= 0) slots.splice(i, 1)
    slot.worker.terminate()
  }

  const spawn = (): Slot => {
    const worker = createWorker(init.workerUrl)
    const slot: Slot = { worker, api: wrap<UnitWorkerApi>(worker), busy: false }
    const died = (what: string): void => {
      retire(slot)
      slot.fail?.(new UnitWorkerError(`the unit Web Worker ${what}`))
      wakeOne()
    }
    worker.addEventListener('error', (e) => died(`failed: ${e.message || 'script error'}`))
    worker.addEventListener('messageerror', () => died('sent a message that could not be read'))
    slots.push(slot)
    return slot
  }

  const wakeOne = (): void => waiters.shift()?.()

  /** Keep `threads` Web Workers loaded, so the first unit does not wait for a module to load. */
  const fillPool = (): void => {
    while (!closed && slots.length < threads) spawn()
  }

  const acquire = async (signal: AbortSignal): Promise<Slot> => {
    for (;;) {
      if (closed) throw new UnitWorkerError('the runner is closed')
      if (signal.aborted) throw abortError()
      const idle = slots.slice(0, threads).find((s) => !s.busy)
      if (idle !== undefined) return idle
      if (slots.length < threads) return spawn()
      await new Promise<void>((resolve) => {
        const done = (): void => {
          signal.removeEventListener('abort', done)
          resolve()
        }
        waiters.push(done)
        signal.addEventListener('abort', done, { once: true })
      })
    }
  }

  const release = (slot: Slot): void => {
    slot.busy = false
    slot.fail = undefined
    // The pool shrank while this unit ran: this Web Worker leaves now.
    if (slots.indexOf(slot) >= threads) retire(slot)
    wakeOne()
  }

  fillPool()
  return {
    get threads() {
      return threads
    },
    kinds,
    setThreads(n) {
      threads = checkThreads(n)
      for (const s of slots.slice(threads)) if (!s.busy) retire(s)
      fillPool()
      for (let i = 0; i < threads; i++) wakeOne()
    },
    async run(task: RunTask, signal: AbortSignal): Promise<RunOutcome> {
      const slot = await acquire(signal)
      slot.busy = true
      try {
        return await new Promise<RunOutcome>((resolve, reject) => {
          const onAbort = (): void => {
            retire(slot)
            reject(abortError())
          }
          slot.fail = reject
          signal.addEventListener('abort', onAbort, { once: true })
          slot.api
            .run(task)
            .then(resolve, reject)
            .finally(() => signal.removeEventListener('abort', onAbort))
        })
      } finally {
        release(slot)
        fillPool()
      }
    },
    close() {
      closed = true
      for (const s of [...slots]) retire(s)
      for (const w of waiters.splice(0)) w()
      return Promise.resolve()
    },
  }
}
