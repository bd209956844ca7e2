// The daemon's job types, keyed by kind (`name@version`): each must be one its runner can run, or the
// daemon refuses to start, rather than take units it would fail one by one. No `node:` imports.
import { ConfigError, kindOf, type AnyJobType } from '../../shared/index.js'
import type { Runner } from '../runner.js'

/** Throws a `ConfigError` naming every kind of `jobTypes` that `runner` cannot run. */
export function runnableJobTypes(
  jobTypes: Iterable<AnyJobType>,
  runner: Pick<Runner, 'kinds'>,
): Map<string, AnyJobType> {
  const byKind = new Map<string, AnyJobType>()
  for (const t of jobTypes) byKind.set(kindOf(t), t)
  const missing = [...byKind.keys()].filter((k) => !runner.kinds.has(k))
  if (missing.length > 0)
    throw new ConfigError(
      `jobTypes: the runner cannot run ${missing.join(', ')} (it runs ${[...runner.kinds].join(', ') || 'nothing'}); ` +
        'give the runner a job types module that exports them',
    )
  return byKind
}
