// Where a daemon's control socket lives, and the checks both ends make before using it: the state
// directory and the socket must be this user's own, never reached through a symbolic link, and closed
// to other users (directory 0700, socket 0600).
import { lstat, mkdir, chmod } from 'node:fs/promises'
import { join } from 'node:path'
import { ConfigError } from '../../shared/index.js'

export function controlSocketPath(stateDir: string): string {
  return join(stateDir, 'control.sock')
}

export class UnsafeControlPathError extends ConfigError {
  override name = 'UnsafeControlPathError'
}

const uid = (): number | undefined => process.getuid?.()

/** Refuse a path that is a symbolic link or belongs to another user. */
async function own(path: string, what: string): Promise<import('node:fs').Stats | undefined> {
  let st
  try {
    st = await lstat(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  if (st.isSymbolicLink()) throw new UnsafeControlPathError(`${what} ${path} is a symbolic link: refused`)
  const me = uid()
  if (me !== undefined && st.uid !== me)
    throw new UnsafeControlPathError(
      `${what} ${path} belongs to user ${st.uid}, not to this user (${me}): refused`,
    )
  return st
}

/**
 * The daemon's side: the state directory exists, is a directory of this user's (made 0700), and the
 * socket path, if something is there, is a socket of this user's. Returns whether a socket exists.
 */
export async function prepareControlDir(stateDir: string): Promise<boolean> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 })
  const dir = await own(stateDir, 'the state directory')
  if (dir === undefined || !dir.isDirectory())
    throw new UnsafeControlPathError(`the state directory ${stateDir} is not a directory`)
  if ((dir.mode & 0o077) !== 0) await chmod(stateDir, 0o700)
  const sock = await own(controlSocketPath(stateDir), 'the control socket')
  if (sock !== undefined && !sock.isSocket())
    throw new UnsafeControlPathError(`${controlSocketPath(stateDir)} exists and is not a socket: refused`)
  return sock !== undefined
}

/** The client's side: the socket must exist and be this user's own socket, not a link to one. */
export async function checkControlSocket(stateDir: string): Promise<string> {
  const dir = await own(stateDir, 'the state directory')
  if (dir === undefined)
    throw new ConfigError(
      `no worker state directory at ${stateDir} (is the worker running with this --state-dir?)`,
    )
  const path = controlSocketPath(stateDir)
  const sock = await own(path, 'the control socket')
  if (sock === undefined)
    throw new ConfigError(`no control socket at ${path}: is the worker running with this --state-dir?`)
  if (!sock.isSocket()) throw new UnsafeControlPathError(`${path} is not a socket: refused`)
  if ((sock.mode & 0o077) !== 0)
    throw new UnsafeControlPathError(
      `${path} is open to other users (mode ${(sock.mode & 0o777).toString(8)}): refused`,
    )
  return path
}
