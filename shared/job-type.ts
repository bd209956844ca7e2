// The job-type contract. A job type is pure, deterministic and isomorphic: the same `run` executes
// in piscina threads and in browser Web Workers, so kernels never import `node:` modules.
import type { TSchema } from '@sinclair/typebox'
import type { ContentRef } from './content.js'

/** What a running kernel may use. Every field is optional for the kernel to call. */
export interface RunContext {
  /** Set when the unit should stop (lease lost, shutdown). Long kernels check `aborted` now and then. */
  readonly signal?: AbortSignal
  /** Bytes of a resource the job type named in `resources(input)`, by SHA-256 hex (hash-checked). */
  resource?(hash: string): Uint8Array | undefined
  /**
   * The bytes of content the job type named in `content(input)`, by root: assembled from chunks
   * that were each checked against the manifest the root names. Read-only; may be shared memory.
   */
  content?(root: string): Uint8Array | undefined
  /**
   * Call at a safe point now and then (every few milliseconds of work). The host may block inside it
   * (paused by the volunteer's policy, or sleeping for the CPU duty cycle); the kernel's state stays
   * in place. Returns true when the kernel should stop now (it then throws or returns early).
   */
  shouldYield?(): boolean
  /** Report progress in [0, 1]. Cheap; the host throttles. */
  progress?(fraction: number): void
  /**
   * Offer a state to resume from: plain data (numbers, strings, arrays, objects) from which `run`
   * continues to the identical output. The host keeps the latest one now and then (throttled).
   */
  checkpoint?(state: unknown): void
  /** A state an earlier run of this unit passed to `checkpoint`: continue from it. Untrusted shape. */
  readonly resumeFrom?: unknown
}

export interface CostEstimate {
  /** How many units `split` will produce. */
  units: number
  /** Rough single-thread seconds per unit on a current desktop core. */
  unitSeconds: number
}

/** Bytes of content a job names (`planResources`), by SHA-256 hex; undefined when not stored. */
export type PlanResource = (hash: string) => Uint8Array | undefined

/**
 * How the coordinator's planner may choose the size of a job's units. A submitter who sets `param`
 * keeps that size; otherwise the planner calls `resize` with the unit time it wants.
 */
export interface Granularity<P> {
  /** The param that sets the unit size (`unitSize`, `depth`, ...). */
  readonly param: string
  /**
   * The params with the unit size whose `estimateCost(...).unitSeconds` is nearest `unitSeconds` (by
   * ratio), within the job type's limits (`maxUnits` included). Everything else is unchanged.
   */
  resize(params: P, unitSeconds: number, resource?: PlanResource): P
}

export interface JobType<P = unknown, I = unknown, O = unknown, R = unknown, Q = unknown> {
  /** Lowercase name, `[a-z][a-z0-9-]*`. */
  readonly name: string
  /** Bumped whenever `run` could give a different output for the same input. */
  readonly version: number
  /** One line for people. */
  readonly description: string
  /**
   * JSON Schema (built with TypeBox) of the params a submitter sends: the coordinator validates
   * requests against it, `GET /v1/job-types` and `GET /openapi.json` publish it. `Q` is its static type.
   */
  readonly paramsSchema: TSchema
  /** Most units one job of this type may split into. */
  readonly maxUnits: number
  /**
   * Params that `paramsSchema` accepted, completed: the defaults filled in and the rules no schema
   * can say checked (`from` < `to`, the unit count). Throws ValidationError whose `field` names the
   * offending field, e.g. `params.from`. Untrusted params go through the coordinator's
   * `parseParams(jobType, raw)`, which checks the schema first.
   */
  completeParams(params: Q): P
  /**
   * Cost of a job with these params, without splitting it. `resource` gives what
   * `planResources(params)` names when the caller has loaded it (a dataset's size sharpens the estimate).
   */
  estimateCost(params: P, resource?: PlanResource): CostEstimate
  /** Present when the planner may choose the unit size (coordinator/planner). */
  readonly granularity?: Granularity<P>
  /**
   * The inputs of the job's units, in order. Never more than `maxUnits`. `resource` gives the bytes
   * of what `planResources(params)` named (undefined when not stored); a job type that needs one that
   * is missing throws a ValidationError naming the param.
   */
  split(params: P, resource?: PlanResource): I[]
  /** Parse a unit input received from the network (workers re-check what they will run). */
  parseInput(raw: unknown): I
  /** The kernel: pure and deterministic. */
  run(input: I, ctx: RunContext): O
  /**
   * Content (an uploaded input blob, or a dataset's root), by SHA-256 hex, that `split` needs to find
   * the units: `resource(hash)` gives a blob's bytes, or a dataset's encoded manifest (`decodeManifest`).
   * The coordinator reads it from its stores when the job is submitted (refusing the job when one is
   * missing) and again when it plans the job. When present, `estimateCost(params).units` is only a
   * lower bound: the count is known once `split` has seen the content.
   */
  planResources?(params: P): string[]
  /** Parse an output received from a volunteer; throws ValidationError when malformed. */
  parseOutput(raw: unknown): O
  /**
   * Whether two outputs agree. When absent, outputs agree only when their msgpack encodings are
   * byte-identical (digest equality).
   */
  compare?: (a: O, b: O) => boolean
  /** Merge the validated outputs, in unit order, into the job's result. */
  merge(params: P, outputs: O[]): R
  /**
   * Content the kernel needs besides its input (a WebAssembly module), by SHA-256 hex. The worker
   * fetches each from a coordinator, checks its hash, and hands it to `run` as `ctx.resource(hash)`.
   */
  resources?(input: I): string[]
  /**
   * Large content the unit reads (a dataset every unit of a job shares), by root. The worker fetches
   * it as hash-checked chunks from its peers (the coordinator only for chunks no peer has), keeps it
   * within the volunteer's cache size, serves it to other peers, and hands it to `run` as
   * `ctx.content(root)`.
   */
  content?(input: I): ContentRef[]
  /**
   * A wall-clock limit for one unit. A unit still running after `ms` is stopped (its thread or Web
   * Worker terminated) and `output` is submitted as its result, so workers agree on the failure.
   */
  timeLimit?(input: I): { ms: number; output: O } | undefined
}

/** A job type whose generic parameters are erased, as stored in a registry. */
export type AnyJobType = JobType<any, any, any, any, any> // eslint-disable-line @typescript-eslint/no-explicit-any

export function kindOf(jobType: { name: string; version: number }): string {
  return `${jobType.name}@${jobType.version}`
}
