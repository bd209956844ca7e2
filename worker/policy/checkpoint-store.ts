// Checkpoints on disk: one file per unit under `<stateDir>/units`, holding the coordinator's signed
// unit envelope (re-verified on restart) and the kernel's latest state, msgpack-encoded so numbers stay
// exact. Written to a temporary file and renamed, so a crash leaves the old checkpoint or the new one.
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { decode, encode, toBase64Url, utf8, type SignedEnvelope } from '../../shared/index.js'

export interface SavedCheckpoint {
  v: 1
  replicaId: string
  unitId: string
  kind: string
  envelope: SignedEnvelope
  /** When the unit was accepted (its envelope was valid then). */
  acceptedAt: number
  savedAt: number
  state: unknown
  /** Yield points passed up to this state (primes: segments). */
  step: number
  fraction: number
}

export interface CheckpointStore {
  save(c: SavedCheckpoint): Promise<void>
  remove(replicaId: string): Promise<void>
  list(): Promise<SavedCheckpoint[]>
}

export function createCheckpointStore(stateDir: string): CheckpointStore {
  const dir = join(stateDir, 'units')
  const file = (replicaId: string): string => join(dir, `${toBase64Url(utf8(replicaId))}.ckpt`)
  // One write at a time per unit, in order; a removal waits for the writes before it.
  const chains = new Map<string, Promise<void>>()
  const serial = (rid: string, f: () => Promise<void>): Promise<void> => {
    const p = (chains.get(rid) ?? Promise.resolve()).then(f, f)
    chains.set(rid, p)
    void p.finally(() => {
      if (chains.get(rid) === p) chains.delete(rid)
    })
    return p
  }
  let removed = new Set<string>()
  return {
    save(c) {
      return serial(c.replicaId, async () => {
        if (removed.has(c.replicaId)) return
        await mkdir(dir, { recursive: true, mode: 0o700 })
        const tmp = `${file(c.replicaId)}.tmp`
        await writeFile(tmp, encode(c), { mode: 0o600 })
        await rename(tmp, file(c.replicaId))
      })
    },
    remove(replicaId) {
      removed.add(replicaId)
      if (removed.size > 10_000) removed = new Set([replicaId])
      return serial(replicaId, () => rm(file(replicaId), { force: true }))
    },
    async list() {
      let names: string[]
      try {
        names = await readdir(dir)
      } catch {
        return []
      }
      const out: SavedCheckpoint[] = []
      for (const n of names.filter((x) => x.endsWith('.ckpt'))) {
        try {
          const c = decode(await readFile(join(dir, n))) as SavedCheckpoint
          if (c.v === 1 && typeof c.replicaId === 'string' && typeof c.step === 'number') out.push(c)
        } catch {
          await rm(join(dir, n), { force: true })
        }
      }
      return out
    },
  }
}
