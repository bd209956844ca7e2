// Clean shutdown on SIGINT/SIGTERM: run the stop function once; a second signal exits at once.
export function onShutdown(stop: () => Promise<void>, write: (line: string) => void): void {
  let stopping = false
  const handler = (signal: NodeJS.Signals): void => {
    if (stopping) {
      write(`${signal} again: exiting now`)
      process.exit(130)
    }
    stopping = true
    write(`${signal}: shutting down`)
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        write(`shutdown failed: ${(err as Error).message}`)
        process.exit(1)
      },
    )
  }
  process.on('SIGINT', handler)
  process.on('SIGTERM', handler)
}
