// A Runner decorator the daemon puts around its runner, for job types that need more than their
// input: it fetches the modules a unit names (`jobType.resources`) through the module cache and the
// large content it reads (`jobType.content`) through the peer fetcher, both of which check every
// byte against the hashes in the signed unit, and enforces the
// job type's per-unit time limit (`jobType.timeLimit`): past it the unit is aborted (its thread or
// Web Worker terminated) and the job type's time-limit output is the unit's result.
import { encode, sha256Hex, UnrecoverableError, type AnyJobType, type ContentRef } from '../shared/index.js'
import type { ModuleCache } from './module-cache.js'
import type { Runner, RunOutcome, RunTask } from './runner.js'

export interface UnitResourcesInit {
  jobTypes: ReadonlyMap<string, AnyJobType>
  modules: ModuleCache
  /** The whole of a content a unit names (`jobType.content`), hash-checked, kept until `release()`. */
  content?: (ref: ContentRef, signal: AbortSignal) => Promise<{ bytes: Uint8Array; release: () => void }>
}

/** The unit's content and modules, gathered before it runs; `release` lets the cache drop them. */
async function gather(
  init: UnitResourcesInit,
  jobType: AnyJobType | undefined,
  task: RunTask,
  signal: AbortSignal,
): Promise<{ task: RunTask; release: () => void }> {
  let out = task
  const hashes = jobType?.resources?.(task.input) ?? []
  if (hashes.length > 0) {
    const resources: Record<string, Uint8Array> = {}
    for (const hash of hashes) resources[hash] = await init.modules.get(hash)
    out = { ...out, resources }
  }
  const releases: (() => void)[] = []
  const release = (): void => releases.forEach((r) => r())
  const refs = jobType?.content?.(task.input) ?? []
  if (refs.length > 0) {
    if (init.content === undefined)
      throw new UnrecoverableError(`${task.kind} reads content this worker cannot fetch`)
    const content: Record<string, Uint8Array> = {}
    try {
      for (const ref of refs) {
        const got = await init.content(ref, signal)
        releases.push(got.release)
        content[ref.root] = got.bytes
      }
    } catch (err) {
      release()
      throw err
    }
    out = { ...out, content }
  }
  return { task: out, release }
}

export function withUnitResources(base: Runner, init: UnitResourcesInit): Runner {
  return {
    get threads() {
      return base.threads
    },
    kinds: base.kinds,
    close: () => base.close(),
    async run(task, signal, hooks?: Parameters<Runner['run']>[2]): Promise<RunOutcome> {
      const jobType = init.jobTypes.get(task.kind)
      const gathered = await gather(init, jobType, task, signal)
      try {
        const limit = jobType?.timeLimit?.(task.input)
        if (limit === undefined) return await base.run(gathered.task, signal, hooks)

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
          return await base.run(gathered.task, inner.signal, hooks)
        } catch (err) {
          if (!timedOut || signal.aborted) throw err
          const output = encode(limit.output)
          return {
            output,
            digest: await sha256Hex(output),
            computeMs: Math.round(performance.now() - started),
          }
        } finally {
          clearTimeout(timer)
          signal.removeEventListener('abort', forward)
        }
      } finally {
        gathered.release()
      }
    },
  }
}
