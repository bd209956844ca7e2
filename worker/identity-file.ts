// The worker's persistent identity: an Ed25519 key in a file only its owner can read.
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import {
  ConfigError,
  exportIdentity,
  generateIdentity,
  importIdentity,
  type Identity,
} from '../shared/index.js'

/** Load the identity at `path`, or create it (mode 0600) when the file does not exist. */
export async function loadOrCreateIdentity(path: string): Promise<{ identity: Identity; created: boolean }> {
  try {
    return { identity: await loadIdentity(path), created: false }
  } catch (err) {
    if (!(err instanceof ConfigError && (err.cause as NodeJS.ErrnoException)?.code === 'ENOENT')) throw err
    const identity = await generateIdentity(true)
    await mkdir(dirname(path), { recursive: true, mode: 0o700 })
    await writeFile(path, JSON.stringify(await exportIdentity(identity)) + '\n', { mode: 0o600, flag: 'wx' })
    return { identity, created: true }
  }
}

/** Load the identity at `path`; a missing or unreadable file is a ConfigError (cause: the fs error). */
export async function loadIdentity(path: string): Promise<Identity> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new ConfigError(`cannot read the key file ${path}: ${(err as Error).message}`, { cause: err })
  }
  const mode = (await stat(path)).mode & 0o777
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    // Tighten rather than refuse: the key is still private to this user from now on.
    await chmod(path, 0o600)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    throw new ConfigError(`key file ${path} is not valid JSON`, { cause: err })
  }
  return importIdentity(parsed)
}
