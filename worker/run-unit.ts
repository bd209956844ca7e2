// Run one unit of a job type from a registry and return its encoded output and digest. The same
// function runs in piscina threads (unit-thread.ts) and in browser Web Workers
// (web-worker/unit-worker.ts), so a unit's digest is computed by the same code in every runtime.
// No `node:` imports.
import { encode, sha256Hex, UnrecoverableError } from '../shared/index.js'
import type { JobTypeRegistry } from './job-types-module.js'
import type { ControlledTask } from './policy/control-word.js'
import { createThreadContext } from './policy/thread-context.js'

/** `ControlledTask` fields (control word, port, resumeFrom) are set only by the policy-aware daemon. */
export interface RunTask extends ControlledTask {
  /** `name@version` of a job type of the runner's registry. */
  kind: string
  input: unknown
  /** Content the job type asked for (`resources(input)`), by SHA-256 hex, already hash-checked. */
  resources?: Record<string, Uint8Array>
  /** Content the job type named (`content(input)`), by root, assembled from hash-checked chunks. */
  content?: Record<string, Uint8Array>
}

export interface RunOutcome {
  /** msgpack bytes of the job type's output. */
  output: Uint8Array
  /** SHA-256 hex of `output`. */
  digest: string
  computeMs: number
}

/** Runs `task` with its job type from `registry` (the thread's; the built-in job types by default). */
export async function runUnit(task: RunTask, registry: JobTypeRegistry): Promise<RunOutcome> {
  const jobType = registry.get(task.kind)
  if (jobType === undefined)
    throw new UnrecoverableError(`job type ${task.kind} is not in this runner's registry`)
  const started = performance.now()
  const thread = createThreadContext(task)
  const out = jobType.run(jobType.parseInput(task.input), {
    ...thread.ctx,
    resource: (hash: string) => task.resources?.[hash],
    content: (root: string) => task.content?.[root],
  }) as unknown
  const computeMs = Math.round(performance.now() - started - thread.blockedMs)
  thread.finish()
  const output = encode(out)
  return { output, digest: await sha256Hex(output), computeMs }
}
