// Where a process's log lines go: JSON lines through pino to a file or stderr, written asynchronously
// from a bounded buffer and flushed when the process exits (SIGTERM and SIGINT end in `process.exit`
// through scripts/signals.ts); a log file is reopened on SIGHUP, for logrotate. On a terminal, lines
// are human-readable instead. Library code only ever sees the isomorphic `Logger` of shared/logger.ts.
import { pino } from 'pino'
import { createLogger, type Logger, type LogLevel, type LogRecord } from '../shared/index.js'

export interface ProcessLoggerInit {
  level?: LogLevel
  /** Append JSON lines here instead of writing to stderr. */
  file?: string
  /** Force JSON lines even on a TTY. */
  json?: boolean
  /** Most bytes waiting to be written; lines beyond it are dropped (and counted). Default 16 MiB. */
  maxBufferBytes?: number
}

export function createProcessLogger(ns: string, init: ProcessLoggerInit = {}): Logger {
  const level = init.level ?? 'info'
  if (init.file === undefined && init.json !== true && process.stderr.isTTY)
    return createLogger(ns, prettyLine, level)
  const dest = pino.destination({
    dest: init.file ?? 2,
    sync: false,
    // Each line is written as soon as the previous write is done (lines that arrive meanwhile go out
    // together), so a quiet process's last line is never held back; the buffer holds at most maxLength.
    minLength: 0,
    maxLength: init.maxBufferBytes ?? 16 * 1024 * 1024,
    mkdir: true,
  })
  let dropped = 0
  dest.on('drop', () => void dropped++)
  const out = pino(
    {
      level: 'debug',
      base: undefined,
      messageKey: 'msg',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    dest,
  )
  process.once('exit', () => {
    if (dropped > 0) out.warn({ ns, dropped }, 'log lines dropped: the log buffer was full')
    try {
      dest.flushSync()
    } catch {
      // Not open yet (the process ends before its first write): nothing to flush.
    }
  })
  if (init.file !== undefined) process.on('SIGHUP', () => dest.reopen())
  const sink = (r: LogRecord): void => out[r.level]({ ns: r.ns, ...r.fields }, r.msg)
  return createLogger(ns, sink, level)
}

function prettyLine(r: LogRecord): void {
  const f = r.fields === undefined ? '' : ' ' + JSON.stringify(r.fields)
  process.stderr.write(
    `${new Date(r.time).toISOString().slice(11, 23)} ${r.level.padEnd(5)} ${r.ns} ${r.msg}${f}\n`,
  )
}
