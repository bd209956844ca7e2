// What a kernel receives from its host, all optional: abort, pause and throttle, progress, checkpoints.
import type { RunContext } from '../shared/job-type.js'

export interface KernelHooks<State> {
  signal?: AbortSignal | undefined
  shouldYield?: (() => boolean) | undefined
  progress?: ((fraction: number) => void) | undefined
  checkpoint?: ((state: State) => void) | undefined
  /** Continue from this checkpoint (ignored when it does not fit the work). Untrusted shape. */
  resumeFrom?: unknown
}

/** The hooks of a run context, bound to it. */
export function hooksOf<State>(ctx: RunContext): KernelHooks<State> {
  return {
    signal: ctx.signal,
    shouldYield: ctx.shouldYield?.bind(ctx),
    progress: ctx.progress?.bind(ctx),
    checkpoint: ctx.checkpoint?.bind(ctx),
    resumeFrom: ctx.resumeFrom,
  }
}
