// Test helper: runners wrapped so that a unit's duration is set by the test, not by the machine's speed.
import type { Runner } from '../../worker/index.js'

const aborted = (signal: AbortSignal): Promise<never> =>
  new Promise((_, reject) => {
    const fail = (): void => reject(new DOMException('aborted', 'AbortError'))
    if (signal.aborted) fail()
    else signal.addEventListener('abort', fail, { once: true })
  })

/** A runner whose units never end unless aborted: "still running" holds for as long as a test needs. */
export function hanging(base: Runner): Runner {
  return {
    get threads() {
      return base.threads
    },
    kinds: base.kinds,
    close: () => base.close(),
    run: (_task, signal) => aborted(signal),
  }
}

/**
 * A slow machine: every unit takes `ms` longer. Only for tests where the wait is the thing tested (a
 * peer slower than its leases, or than an idle peer), never as a stand-in for an event.
 */
export function slow(ms: number): (base: Runner) => Runner {
  return (base) => ({
    get threads() {
      return base.threads
    },
    kinds: base.kinds,
    close: () => base.close(),
    async run(task, signal, hooks) {
      await new Promise((r) => setTimeout(r, ms))
      return base.run(task, signal, hooks)
    },
  })
}

export interface Gate {
  /** Wraps one worker's runner: its first `passes` units run at once, later ones wait at the gate. */
  wrap: (base: Runner) => Runner
  /** Units waiting at the gate now. */
  readonly waiting: number
  /** Let every waiting and later unit run. */
  open: () => void
}

/**
 * Units that stop at a gate after the first `passes` of each worker, so a test can hold a job part-way
 * ("some units done, the rest not") on any machine, and let it go on with `open()`.
 */
export function gate(passes: number): Gate {
  let opened = false
  let waiting = 0
  const openers = new Set<() => void>()
  return {
    wrap(base) {
      let ran = 0
      return {
        get threads() {
          return base.threads
        },
        kinds: base.kinds,
        close: () => base.close(),
        async run(task, signal, hooks) {
          if (!opened && ++ran > passes) {
            waiting++
            let resolve: () => void = () => {}
            const open = new Promise<void>((r) => (resolve = r))
            openers.add(resolve)
            try {
              await Promise.race([open, aborted(signal)])
            } finally {
              openers.delete(resolve)
              waiting--
            }
          }
          return base.run(task, signal, hooks)
        },
      }
    },
    get waiting() {
      return waiting
    },
    open() {
      opened = true
      for (const resolve of openers) resolve()
    },
  }
}
