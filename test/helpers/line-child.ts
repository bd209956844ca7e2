// Test helper: a child process whose stdout and stderr lines are kept, so a test waits on what the
// child says (a line matching a pattern) instead of on time.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { once } from 'node:events'

export interface LineChild {
  child: ChildProcess
  /** Lines the child printed on stdout and stderr so far. */
  lines: string[]
  /** Resolves with the first line matching `re`, from the line with index `from` on. */
  waitForLine(re: RegExp, timeoutMs?: number, from?: number): Promise<string>
  kill(signal?: NodeJS.Signals): Promise<void>
}

/** Spawns `command args` with stdout and stderr piped (stdin ignored) and collects their lines. */
export function spawnLines(
  command: string,
  args: string[],
  options: Omit<SpawnOptions, 'stdio'> = {},
): LineChild {
  const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: string[] = []
  const listeners = new Set<() => void>()
  for (const stream of [child.stdout, child.stderr]) {
    let buf = ''
    stream?.setEncoding('utf8')
    stream?.on('data', (d: string) => {
      buf += d
      const parts = buf.split('\n')
      buf = parts.pop() ?? ''
      lines.push(...parts)
      for (const l of listeners) l()
    })
  }
  return {
    child,
    lines,
    waitForLine(re, timeoutMs = 30_000, from = 0) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const hit = lines.slice(from).find((l) => re.test(l))
          if (hit !== undefined) {
            listeners.delete(check)
            clearTimeout(timer)
            resolve(hit)
          }
        }
        const timer = setTimeout(() => {
          listeners.delete(check)
          reject(
            new Error(`no line matching ${re} within ${timeoutMs} ms; got:\n${lines.slice(-20).join('\n')}`),
          )
        }, timeoutMs)
        listeners.add(check)
        child.once('exit', () => {
          check()
        })
        check()
      })
    },
    async kill(signal = 'SIGKILL') {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = once(child, 'exit')
      child.kill(signal)
      await exited
    },
  }
}
