// A server child process: keeps the tail of its output, stops cleanly, and never outlives this process.
import { spawn, type ChildProcess } from 'node:child_process'
import { CohortError, TimeoutError } from '../shared/errors.js'

export interface ServerProcess {
  readonly name: string
  readonly pid: number
  /** Whether the process has exited. */
  readonly exited: boolean
  /** Resolves when the process has exited (never rejects). */
  readonly whenExited: Promise<void>
  /** The last few KiB of its stdout and stderr. */
  tail(): string
  /** Sends `signal` and waits for the process to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>
  /** SIGTERM, then SIGKILL if it has not exited after `timeoutMs`. */
  stop(timeoutMs?: number): Promise<void>
}

const live = new Set<ChildProcess>()
let hooksInstalled = false

function killAllNow(): void {
  for (const child of live) {
    try {
      child.kill('SIGTERM')
    } catch {
      // already gone
    }
  }
  live.clear()
}

/** Kills every live child when this process exits, including on a signal nobody else handles. */
function installExitHooks(): void {
  if (hooksInstalled) return
  hooksInstalled = true
  process.on('exit', killAllNow)
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      // Someone else handles this signal: they shut down, and the 'exit' hook does the rest.
      if (process.listenerCount(signal) > 1) return
      killAllNow()
      process.removeListener(signal, onSignal)
      process.kill(process.pid, signal)
    }
    process.on(signal, onSignal)
  }
}

export function spawnServer(
  name: string,
  command: string,
  args: string[],
  log: (line: string) => void,
): ServerProcess {
  installExitHooks()
  // A process group of its own: a terminal's Ctrl-C reaches this process alone, which stops its
  // servers last, after what depends on them (workers handing leases back through the coordinator).
  // The exit hooks below still stop them whenever this process exits.
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  let output = ''
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-6000)
  }
  child.stdout?.on('data', collect)
  child.stderr?.on('data', collect)
  let exited = false
  let expected = false
  const whenExited = new Promise<void>((resolve) => {
    const done = (why: string) => {
      if (exited) return
      exited = true
      live.delete(child)
      if (!expected)
        log(`${name} (pid ${child.pid ?? '?'}) exited unexpectedly: ${why}\n${lastLines(output)}`)
      resolve()
    }
    child.once('error', (err) => done(err.message))
    child.once('close', (code, signal) => done(signal ?? `exit code ${code}`))
  })
  if (child.pid === undefined) {
    // spawn failed: the 'error' event follows.
    expected = true
  } else live.add(child)

  const kill = async (signal: NodeJS.Signals = 'SIGKILL') => {
    expected = true
    if (!exited) child.kill(signal)
    await whenExited
  }
  return {
    name,
    pid: child.pid ?? -1,
    get exited() {
      return exited
    },
    whenExited,
    tail: () => lastLines(output),
    kill,
    async stop(timeoutMs = 10_000) {
      expected = true
      if (exited) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
      await whenExited
      clearTimeout(timer)
    },
  }
}

function lastLines(text: string, count = 20): string {
  return text.trimEnd().split('\n').slice(-count).join('\n')
}

/**
 * Waits until `ready()` answers true, checking again every `intervalMs`. Fails as soon as the server exits,
 * or after `timeoutMs`, with an error that ends with the tail of the server's output.
 */
export async function waitReady(
  server: ServerProcess,
  ready: () => Promise<boolean>,
  timeoutMs = 15_000,
  intervalMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (server.exited) {
      throw new CohortError(`${server.name} exited while starting. Its output ends with:\n${server.tail()}`)
    }
    if (await ready().catch(() => false)) return
    if (Date.now() >= deadline) {
      throw new TimeoutError(
        `${server.name} (pid ${server.pid}) not ready after ${timeoutMs} ms. Its output ends with:\n${server.tail()}`,
      )
    }
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      server.whenExited,
      new Promise<void>((resolve) => (timer = setTimeout(resolve, intervalMs))),
    ])
    clearTimeout(timer)
  }
}
