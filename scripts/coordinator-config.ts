// The coordinator's config file (`cohort coordinator --config coordinator.json`, or
// COHORT_COORDINATOR_CONFIG): every tuning field of coordinator/options.ts plus the process settings
// below, in one JSON object. Unknown keys and out-of-range values are refused with the file and the
// field named; flags, then the environment, override the file. See docs/deployment.md.
import { readFile } from 'node:fs/promises'
import { ConfigError, type LogLevel } from '../shared/index.js'
import { DEFAULT_TUNING, resolveTuning, type CoordinatorTuning } from '../coordinator/index.js'

/** Settings of the process rather than of the coordinator service; each documented in docs/deployment.md. */
export interface CoordinatorProcessSettings {
  port?: number
  host?: string
  redisUrl?: string
  natsUrl?: string
  natsWsUrl?: string
  natsCredsFile?: string
  natsAccountSeedFile?: string
  keyFile?: string
  apiKeysFile?: string
  logFile?: string
  logLevel?: LogLevel
}

export const PROCESS_KEYS: readonly (keyof CoordinatorProcessSettings)[] = [
  'port',
  'host',
  'redisUrl',
  'natsUrl',
  'natsWsUrl',
  'natsCredsFile',
  'natsAccountSeedFile',
  'keyFile',
  'apiKeysFile',
  'logFile',
  'logLevel',
]

export interface CoordinatorConfigFile {
  process: CoordinatorProcessSettings
  tuning: Partial<CoordinatorTuning>
}

const LEVELS: readonly string[] = ['debug', 'info', 'warn', 'error']

/** Check a parsed config file; errors name `source` and the field. */
export function parseCoordinatorConfig(raw: unknown, source: string): CoordinatorConfigFile {
  const fail = (field: string, msg: string): never => {
    throw new ConfigError(`${source}: ${field}: ${msg}`)
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    fail('the file', 'must hold a JSON object')
  const rec = raw as Record<string, unknown>
  const tuningKeys = Object.keys(DEFAULT_TUNING)
  const process: CoordinatorProcessSettings = {}
  const tuning: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(rec)) {
    if (tuningKeys.includes(k)) tuning[k] = v
    else if ((PROCESS_KEYS as readonly string[]).includes(k)) {
      if (k === 'port') {
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 65535)
          fail(k, `must be an integer from 0 to 65535, got ${JSON.stringify(v)}`)
        process.port = v as number
      } else if (k === 'logLevel') {
        if (typeof v !== 'string' || !LEVELS.includes(v))
          fail(k, `must be one of ${LEVELS.join(', ')}, got ${JSON.stringify(v)}`)
        process.logLevel = v as LogLevel
      } else {
        if (typeof v !== 'string' || v.trim() === '')
          fail(k, `must be a non-empty string, got ${JSON.stringify(v)}`)
        ;(process as Record<string, unknown>)[k] = v
      }
    } else fail(k, `is not a known setting (known: ${[...PROCESS_KEYS, ...tuningKeys].join(', ')})`)
  }
  // Validated now, field by field, so that a bad file is refused before anything starts.
  try {
    resolveTuning(tuning)
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`${source}: ${err.message}`, { cause: err })
    throw err
  }
  return { process, tuning: tuning }
}

export async function loadCoordinatorConfig(path: string): Promise<CoordinatorConfigFile> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new ConfigError(`cannot read the coordinator config file ${path}: ${(err as Error).message}`, {
      cause: err,
    })
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    throw new ConfigError(`${path}: not JSON: ${(err as Error).message}`, { cause: err })
  }
  return parseCoordinatorConfig(raw, path)
}
