// A wake-up signal: wait until something happens, a timeout passes, or the signal is closed.

export interface Wake {
  /** Resolves on the next `notify()`, after `ms`, or at `close()`. */
  wait(ms: number): Promise<void>
  notify(): void
  close(): void
}

export function createWake(): Wake {
  const waiters = new Set<() => void>()
  let closed = false
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
    notify: flush,
    close() {
      closed = true
      flush()
    },
  }
}
