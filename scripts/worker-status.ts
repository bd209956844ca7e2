// `cohort worker status`: read the daemon's status file and print it.
import { ConfigError } from '../shared/index.js'
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
