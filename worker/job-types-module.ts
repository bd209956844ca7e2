// Job types come to a runner's threads as a module, not as functions (a piscina thread or a Web
// Worker cannot receive functions): the thread imports the module and runs units with the registry it
// exports as `jobTypes`. No `node:` imports.
import { ConfigError, kindOf, type AnyJobType } from '../shared/index.js'

/** Job types by kind (`name@version`), as `runUnit` looks them up. */
export type JobTypeRegistry = ReadonlyMap<string, AnyJobType>

/** A module whose `jobTypes` export is a `JobTypeRegistry` (or an iterable of job types). */
export interface JobTypesModule {
  /** The module's URL, as `import()` takes it (a `file:` URL of a compiled `.js` file in Node). */
  url: string | URL
  /**
   * The kinds it exports, known before any thread loads it: the daemon checks its job types against
   * them at construction; each thread checks the module holds them all when it loads.
   */
  kinds: Iterable<string>
}

const isJobType = (v: unknown): v is AnyJobType =>
  typeof v === 'object' &&
  v !== null &&
  typeof (v as AnyJobType).name === 'string' &&
  typeof (v as AnyJobType).version === 'number' &&
  typeof (v as AnyJobType).run === 'function' &&
  typeof (v as AnyJobType).parseInput === 'function'

/** The registry a loaded module exports; a `ConfigError` naming the module for anything else. */
export function registryOf(exports: unknown, url: string): JobTypeRegistry {
  const value = (exports as { jobTypes?: unknown } | null)?.jobTypes
  const types = value instanceof Map ? [...(value as Map<unknown, unknown>).values()] : value
  if (types === null || typeof types !== 'object' || !(Symbol.iterator in types))
    throw new ConfigError(
      `job types module ${url}: its jobTypes export must be a Map or an iterable of job types`,
    )
  const registry = new Map<string, AnyJobType>()
  for (const t of types as Iterable<unknown>) {
    if (!isJobType(t))
      throw new ConfigError(`job types module ${url}: jobTypes holds something that is not a job type`)
    registry.set(kindOf(t), t)
  }
  return registry
}

/** Imports a job types module and checks it holds every kind in `kinds`. */
export async function loadJobTypes(
  url: string | URL,
  kinds: Iterable<string> = [],
): Promise<JobTypeRegistry> {
  const href = String(url)
  const registry = registryOf(await import(href), href)
  const missing = [...kinds].filter((k) => !registry.has(k))
  if (missing.length > 0)
    throw new ConfigError(`job types module ${href} does not export ${missing.join(', ')}`)
  return registry
}
