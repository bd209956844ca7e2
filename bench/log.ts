// Where the platform's logs go during a benchmark: nowhere, unless COHORT_BENCH_LOG is set
// (`debug`, `info`, `warn` or `error`; any other non-empty value means `info`), then to stderr.
import { createLogger, silentLogger, type Logger, type LogLevel } from '../shared/index.js'

const LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error']

function requestedLevel(): LogLevel | undefined {
  const v = process.env['COHORT_BENCH_LOG']?.trim()
  if (v === undefined || v === '') return undefined
  return LEVELS.find((l) => l === v) ?? 'info'
}

export function benchLogger(ns: string): Logger {
  const level = requestedLevel()
  if (level === undefined) return silentLogger
  return createLogger(ns, (r) => console.error(JSON.stringify(r)), level)
}

/** Progress lines about the benchmark itself (always shown, on stderr so stdout stays the report). */
export function progress(line: string): void {
  console.error(`bench: ${line}`)
}
