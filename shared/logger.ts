// Structured, namespaced logging. The process entry decides where lines go (the sink); library code
// only ever receives a Logger, so nothing here touches `console` or `process`.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'
export type LogFields = Record<string, unknown>

export interface LogRecord {
  time: number
  level: LogLevel
  ns: string
  msg: string
  fields?: LogFields
}

export type LogSink = (record: LogRecord) => void

export interface Logger {
  debug(msg: string, fields?: LogFields): void
  info(msg: string, fields?: LogFields): void
  warn(msg: string, fields?: LogFields): void
  error(msg: string, fields?: LogFields): void
  /** A logger for a sub-namespace: `coordinator` -> `coordinator:validator`. */
  child(ns: string): Logger
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 }

export function createLogger(ns: string, sink: LogSink, level: LogLevel = 'info'): Logger {
  const min = ORDER[level]
  const emit = (lvl: LogLevel, msg: string, fields?: LogFields): void => {
    if (ORDER[lvl] < min) return
    sink(
      fields === undefined
        ? { time: Date.now(), level: lvl, ns, msg }
        : { time: Date.now(), level: lvl, ns, msg, fields },
    )
  }
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (sub) => createLogger(`${ns}:${sub}`, sink, level),
  }
}

/** A logger that drops everything (tests that do not care about logs). */
export const silentLogger: Logger = createLogger('silent', () => {}, 'error')

/** Describe an unknown thrown value for a log line. */
export function errorFields(err: unknown): LogFields {
  if (err instanceof Error) return { error: err.message, errorName: err.name }
  return { error: String(err) }
}
