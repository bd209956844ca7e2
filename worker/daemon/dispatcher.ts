// Starts buffered units on free threads and carries each through its run: running, then submitting
// while its result travels (the thread already takes the next unit), then gone. A unit that fails to
// run goes back to the coordinators at once. No `node:` imports.
import { errorFields, type Logger, type UnitPayload } from '../../shared/index.js'
import type { DaemonGuest } from '../policy/guest-hooks.js'
import type { RunOutcome, Runner } from '../runner.js'
import type { Held, HeldUnits } from './held-units.js'

/** The counts this part keeps in the daemon's stats. */
export interface RunStats {
  unitsDone: number
  unitsFailed: number
  computeMs: number
}

export interface DispatcherInit {
  held: HeldUnits
  runner: Runner
  threads(): number
  /** False while the daemon stops or is paused, or the policy holds units back. */
  mayStart(): boolean
  guest?: Pick<DaemonGuest, 'hooksFor' | 'onFinished'> | undefined
  /** Sends a computed result; settles when it is answered or given up. */
  submit(held: Held, outcome: RunOutcome): Promise<unknown>
  /** Hands back the lease of a unit that failed to run. */
  release(replicaIds: string[], reason: string): Promise<unknown>
  stats: RunStats
  log: Logger
  /** A unit started computing (the daemon's `started` event). */
  onStarted(unit: UnitPayload): void
  /** A thread or a place in the buffer came free: time to ask for work. */
  onFreed(): void
}

export interface Dispatcher {
  /** Starts buffered units while threads are free and starting is allowed. */
  dispatch(): void
  /** Mean wall time per unit run so far (pauses and fetching included); undefined before the first. */
  perUnitMs(): number | undefined
  /** Settles when every run started so far has ended, its result submitted or given up. */
  settled(): Promise<void>
}

export function createDispatcher(init: DispatcherInit): Dispatcher {
  const { held, log, stats } = init
  const runs = new Set<Promise<void>>()
  /** Wall time of the units run so far. */
  let wallMs = 0

  const runOne = async (h: Held): Promise<void> => {
    if (held.move(h, 'buffered', 'running').length === 0) return
    init.onStarted(h.unit)
    try {
      log.debug('unit started', { unitId: h.unit.unitId, replicaId: h.unit.replicaId })
      const startedAt = Date.now()
      const outcome = await init.runner.run(
        { kind: h.unit.kind, input: h.unit.input },
        h.abort.signal,
        init.guest?.hooksFor(h.unit),
      )
      init.guest?.onFinished(h.unit, outcome)
      // Wall time, pauses and fetching included: what the buffer really waits for.
      wallMs += Date.now() - startedAt
      stats.unitsDone++
      stats.computeMs += outcome.computeMs
      // The thread is free now: start the next buffered unit while this result travels, and refill.
      held.move(h, 'running', 'submitting')
      dispatch()
      init.onFreed()
      await init.submit(h, outcome)
    } catch (err) {
      if (!h.abort.signal.aborted) {
        stats.unitsFailed++
        log.warn('unit failed to run; handing it back', { unitId: h.unit.unitId, ...errorFields(err) })
        await init
          .release([h.unit.replicaId], `run failed: ${(err as Error).message}`.slice(0, 200))
          .catch(() => {})
      }
    } finally {
      if (h.state !== 'submitting') init.guest?.onFinished(h.unit, undefined)
      held.remove(h)
      init.onFreed()
      dispatch()
    }
  }

  function dispatch(): void {
    if (!init.mayStart()) return
    for (const h of held.firstIn('buffered', init.threads() - held.count('running'))) {
      const run = runOne(h)
      runs.add(run)
      void run.finally(() => runs.delete(run))
    }
  }

  return {
    dispatch,
    perUnitMs: () => (stats.unitsDone === 0 ? undefined : wallMs / stats.unitsDone),
    settled: async () => {
      await Promise.allSettled([...runs])
    },
  }
}
