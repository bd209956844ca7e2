// A coordinator's periodic background task (sweeps, lease reaping, upload expiry): run every
// `intervalMs`, never two runs at once (a tick that finds the last run still going is skipped), a
// failed run reported and the next tick tried again, and stop() waiting for the run under way.

export interface Periodic {
  /** No further runs; resolves when the run under way (if any) has ended. */
  stop(): Promise<void>
}

export function every(
  intervalMs: number,
  run: () => Promise<unknown>,
  onError: (err: unknown) => void,
): Periodic {
  let running: Promise<void> | undefined
  const timer = setInterval(() => {
    if (running !== undefined) return
    running = run()
      .then(() => undefined, onError)
      .finally(() => {
        running = undefined
      })
  }, intervalMs)
  return {
    async stop() {
      clearInterval(timer)
      await running
    },
  }
}
