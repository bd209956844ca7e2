// A wake-up signal: wait until something happens, a timeout passes, or the signal is closed.

export interface Wake {
  /** Resolves on the next `notify()`, after `ms`, or at `close()`. */
  wait(ms: number): Promise<void>
  notify(): void
  close(): void
  /** How many times `notify()` was called: a waiter can tell whether this signal fired meanwhile. */
  readonly notified: number
}

export function createWake(): Wake {
  const waiters = new Set<() => void>()
  let closed = false
  let notified = 0
  const flush = (): void => {
    const all = [...waiters]
    waiters.clear()
    for (const f of all) f()
  }
  return {
    wait(ms) {
      if (closed) return Promise.resolve()
      return new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer)
          waiters.delete(done)
          resolve()
        }
        const timer = setTimeout(done, ms)
        waiters.add(done)
      })
    },
    notify() {
      notified++
      flush()
    },
    get notified() {
      return notified
    },
    close() {
      closed = true
      flush()
    },
  }
}
