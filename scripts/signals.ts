// Clean shutdown on SIGINT/SIGTERM: run the stop function once; a second signal exits at once.
export function onShutdown(stop: () => Promise<void>, write: (line: string) => void): (why: string) => void {
  let stopping = false
  const begin = (why: string): void => {
    stopping = true
    write(`${why}: shutting down`)
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        write(`shutdown failed: ${(err as Error).message}`)
        process.exit(1)
      },
    )
  }
  const handler = (signal: NodeJS.Signals): void => {
    if (stopping) {
      write(`${signal} again: exiting now`)
      process.exit(130)
    }
    begin(signal)
  }
  process.on('SIGINT', handler)
  process.on('SIGTERM', handler)
  return (why) => {
    if (!stopping) begin(why)
  }
}

/**
 * Calls `onGone` once the process `pid` no longer exists (checked every second): a child started in
 * a process group of its own, so that only its parent signals it, still stops when the parent dies.
 */
export function watchParent(pid: number, onGone: () => void): void {
  const timer = setInterval(() => {
    try {
      process.kill(pid, 0)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') return
      clearInterval(timer)
      onGone()
    }
  }, 1000)
  timer.unref()
}
