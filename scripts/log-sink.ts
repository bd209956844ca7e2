// Where a process's log lines go: one line each to stderr (or a file), human-readable on a TTY.
import { appendFileSync } from 'node:fs'
import { createLogger, type Logger, type LogLevel, type LogRecord } from '../shared/index.js'

export interface ProcessLoggerInit {
  level?: LogLevel
  /** Append JSON lines here instead of writing to stderr. */
  file?: string
  /** Force JSON lines even on a TTY. */
  json?: boolean
}

export function createProcessLogger(ns: string, init: ProcessLoggerInit = {}): Logger {
  const pretty = init.file === undefined && init.json !== true && process.stderr.isTTY
  const sink = (r: LogRecord): void => {
    let line: string
    if (pretty) {
      const f = r.fields === undefined ? '' : ' ' + JSON.stringify(r.fields)
      line = `${new Date(r.time).toISOString().slice(11, 23)} ${r.level.padEnd(5)} ${r.ns} ${r.msg}${f}\n`
    } else {
      line =
        JSON.stringify({
          time: new Date(r.time).toISOString(),
          level: r.level,
          ns: r.ns,
          msg: r.msg,
          ...r.fields,
        }) + '\n'
    }
    if (init.file !== undefined) appendFileSync(init.file, line)
    else process.stderr.write(line)
  }
  return createLogger(ns, sink, init.level ?? 'info')
}
