// Finding the server binaries, and installing the Debian packages that provide them when they are missing.
import { spawn } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'

/** Binaries this project runs, by the Debian package that ships each. */
const packageOf = {
  'redis-server': 'redis-server',
  'nats-server': 'nats-server',
} as const

export type ServerBinary = keyof typeof packageOf

/** Directories searched besides PATH: Debian puts nats-server in /usr/sbin, often not on a user's PATH. */
const extraDirs = ['/usr/local/sbin', '/usr/sbin', '/sbin']

/** The absolute path of an executable named `name`, or undefined when there is none. */
export function findBinary(name: string, pathEnv: string = process.env.PATH ?? ''): string | undefined {
  const dirs = [...pathEnv.split(delimiter).filter((d) => d !== ''), ...extraDirs]
  for (const dir of dirs) {
    const candidate = join(dir, name)
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      // not here
    }
  }
  return undefined
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0
}

function run(command: string, args: string[], log: (line: string) => void): Promise<void> {
  log(`$ ${command} ${args.join(' ')}`)
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    })
    let tail = ''
    const collect = (chunk: Buffer) => {
      tail = (tail + chunk.toString('utf8')).slice(-4000)
    }
    child.stdout.on('data', collect)
    child.stderr.on('data', collect)
    child.once('error', reject)
    child.once('exit', (code, signal) => {
      if (code === 0) resolve()
      else reject(new Error(`${command} ${args.join(' ')} failed (${signal ?? `exit ${code}`}):\n${tail}`))
    })
  })
}

/**
 * Absolute paths of the given binaries. Missing ones are installed with apt-get when running as root;
 * otherwise this throws an Error that gives the command to run.
 */
export async function ensureBinaries<B extends ServerBinary>(
  names: readonly B[],
  log: (line: string) => void = () => {},
): Promise<Record<B, string>> {
  const missing = names.filter((name) => findBinary(name) === undefined)
  if (missing.length > 0) {
    const packages = [...new Set(missing.map((name) => packageOf[name]))]
    const apt = findBinary('apt-get')
    if (!isRoot() || apt === undefined) {
      throw new Error(
        `${missing.join(' and ')} not found (looked in PATH, ${extraDirs.join(', ')}). Install with:\n` +
          `  sudo apt-get install -y --no-install-recommends ${packages.join(' ')}`,
      )
    }
    log(`installing missing Debian packages: ${packages.join(' ')}`)
    await run(apt, ['update'], log)
    await run(
      apt,
      ['-o', 'DPkg::Lock::Timeout=300', 'install', '-y', '--no-install-recommends', ...packages],
      log,
    )
  }
  const found = {} as Record<B, string>
  for (const name of names) {
    const path = findBinary(name)
    if (path === undefined) throw new Error(`${name} is still missing after installing ${packageOf[name]}`)
    found[name] = path
  }
  return found
}
