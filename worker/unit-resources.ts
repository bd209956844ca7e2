// A Runner decorator the daemon puts around its runner, for job types that need more than their
// input: it fetches the content a unit names (`jobType.resources`, e.g. a WebAssembly module) through
// the module cache, which checks every byte against the hash in the signed unit, and enforces the
// job type's per-unit time limit (`jobType.timeLimit`): past it the unit is aborted (its thread or
// Web Worker terminated) and the job type's time-limit output is the unit's result.
import { encode, sha256Hex, type AnyJobType } from '../shared/index.js'
import type { ModuleCache } from './module-cache.js'
import type { Runner, RunOutcome } from './runner.js'

export interface UnitResourcesInit {
  jobTypes: ReadonlyMap<string, AnyJobType>
  modules: ModuleCache
}

export function withUnitResources(base: Runner, init: UnitResourcesInit): Runner {
  return {
    get threads() {
      return base.threads
    },
    close: () => base.close(),
    async run(task, signal, hooks?: Parameters<Runner['run']>[2]): Promise<RunOutcome> {
      const jobType = init.jobTypes.get(task.kind)
      const input = task.input
      const hashes = jobType?.resources?.(input) ?? []
      let withBytes = task
      if (hashes.length > 0) {
        const resources: Record<string, Uint8Array> = {}
        for (const hash of hashes) resources[hash] = await init.modules.get(hash)
        withBytes = { ...task, resources }
      }
      const limit = jobType?.timeLimit?.(input)
      if (limit === undefined) return await base.run(withBytes, signal, hooks)

      const inner = new AbortController()
      const forward = (): void => inner.abort()
      signal.addEventListener('abort', forward, { once: true })
      let timedOut = false
      const timer = setTimeout(() => {
        timedOut = true
        inner.abort()
      }, limit.ms)
      const started = performance.now()
      try {
        return await base.run(withBytes, inner.signal, hooks)
      } catch (err) {
        if (!timedOut || signal.aborted) throw err
        const output = encode(limit.output)
        return { output, digest: await sha256Hex(output), computeMs: Math.round(performance.now() - started) }
      } finally {
        clearTimeout(timer)
        signal.removeEventListener('abort', forward)
      }
    },
  }
}
