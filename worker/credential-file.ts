// The daemon's NATS credentials on disk: a JSON file beside the identity key file, readable only by
// its owner (it holds the nkey seed), replaced atomically so a crash never leaves half a file.
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import type { CredentialStore, StoredCredentials } from './volunteer-credentials.js'

/** `worker-key.json` → `worker-key.nats.json`, in the same directory. */
export function credentialFileFor(keyFile: string): string {
  return `${keyFile.replace(/\.json$/i, '')}.nats.json`
}

export function createCredentialFile(path: string): CredentialStore {
  return {
    async load() {
      let text: string
      try {
        text = await readFile(path, 'utf8')
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
        throw err
      }
      await chmod(path, 0o600).catch(() => {})
      return JSON.parse(text) as unknown
    },
    async save(credentials: StoredCredentials) {
      await mkdir(dirname(path), { recursive: true, mode: 0o700 })
      const tmp = `${path}.${process.pid}.tmp`
      await writeFile(tmp, JSON.stringify(credentials) + '\n', { mode: 0o600 })
      await rename(tmp, path)
    },
  }
}
