// `cohort worker status`: read the daemon's status file and print it; `cohort worker finish`: wait for
// the daemon to exit.
import { CohortError, ConfigError } from '../shared/index.js'
import { formatStatus, readStatus, statusPath } from '../worker/policy/index.js'

export async function printWorkerStatus(
  stateDir: string,
  json: boolean,
  out: NodeJS.WritableStream,
): Promise<void> {
  let status
  try {
    status = await readStatus(stateDir)
  } catch (err) {
    throw new ConfigError(
      `no worker status at ${statusPath(stateDir)} (is the worker running with this --state-dir?): ${(err as Error).message}`,
      { cause: err },
    )
  }
  out.write(json ? JSON.stringify(status, null, 2) + '\n' : formatStatus(status))
}

/** Resolves once process `pid` is gone (checked every 200 ms), or fails after `timeoutMs`. */
export async function waitForExit(pid: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      process.kill(pid, 0)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') return
      throw err
    }
    if (Date.now() > deadline)
      throw new CohortError(`worker (pid ${pid}) still running after ${Math.round(timeoutMs / 1000)} s`)
    await new Promise((r) => setTimeout(r, 200))
  }
}
