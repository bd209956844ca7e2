// The job-type contract. A job type is pure, deterministic and isomorphic: the same `run` executes
// in piscina threads and in browser Web Workers, so kernels never import `node:` modules.

/** What a running kernel may use. Every field is optional for the kernel to call. */
export interface RunContext {
  /** Set when the unit should stop (lease lost, shutdown). Long kernels check `aborted` now and then. */
  readonly signal?: AbortSignal
}

export interface CostEstimate {
  /** How many units `split` will produce. */
  units: number
  /** Rough single-thread seconds per unit on a current desktop core. */
  unitSeconds: number
}

export interface JobType<P = unknown, I = unknown, O = unknown, R = unknown> {
  /** Lowercase name, `[a-z][a-z0-9-]*`. */
  readonly name: string
  /** Bumped whenever `run` could give a different output for the same input. */
  readonly version: number
  /** One line for people. */
  readonly description: string
  /** JSON Schema of the params, published by `GET /v1/job-types`. */
  readonly paramsSchema: Record<string, unknown>
  /** Most units one job of this type may split into. */
  readonly maxUnits: number
  /**
   * Parse untrusted params (from an HTTP body). Throws ValidationError whose `field` names the
   * offending field, e.g. `params.to`.
   */
  parseParams(raw: unknown): P
  /** Cost of a job with these params, without splitting it. */
  estimateCost(params: P): CostEstimate
  /** The inputs of the job's units, in order. Never more than `maxUnits`. */
  split(params: P): I[]
  /** Parse a unit input received from the network (workers re-check what they will run). */
  parseInput(raw: unknown): I
  /** The kernel: pure and deterministic. */
  run(input: I, ctx: RunContext): O
  /** Parse an output received from a volunteer; throws ValidationError when malformed. */
  parseOutput(raw: unknown): O
  /**
   * Whether two outputs agree. When absent, outputs agree only when their msgpack encodings are
   * byte-identical (digest equality).
   */
  compare?: (a: O, b: O) => boolean
  /** Merge the validated outputs, in unit order, into the job's result. */
  merge(params: P, outputs: O[]): R
}

/** A job type whose generic parameters are erased, as stored in a registry. */
export type AnyJobType = JobType<any, any, any, any> // eslint-disable-line @typescript-eslint/no-explicit-any

export function kindOf(jobType: { name: string; version: number }): string {
  return `${jobType.name}@${jobType.version}`
}
