// The local control protocol of a running daemon (`cohort worker pause|resume|finish`): one JSON
// object per line each way, over a Unix domain socket in the worker's state directory. Messages are
// bounded; anything malformed is answered with an error and the connection closed.
import { ConfigError } from '../../shared/index.js'

export const CONTROL_VERSION = 1
/** Longest line either end accepts, in bytes. */
export const MAX_CONTROL_LINE = 4096
/** How long a connection may stay silent before it is closed, ms. */
export const CONTROL_IDLE_MS = 5_000

export type ControlCommand = 'pause' | 'resume' | 'finish' | 'status'
const COMMANDS: readonly ControlCommand[] = ['pause', 'resume', 'finish', 'status']

export interface ControlRequest {
  v: typeof CONTROL_VERSION
  cmd: ControlCommand
}

/** The daemon after the command: its mode and process id. */
export type ControlReply =
  | { v: typeof CONTROL_VERSION; ok: true; mode: 'running' | 'paused' | 'finishing'; pid: number }
  | { v: typeof CONTROL_VERSION; ok: false; error: string }

export class ControlProtocolError extends ConfigError {
  override name = 'ControlProtocolError'
}

function object(line: string, what: string): Record<string, unknown> {
  let raw: unknown
  try {
    raw = JSON.parse(line)
  } catch {
    throw new ControlProtocolError(`${what} is not JSON`)
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new ControlProtocolError(`${what} must be a JSON object`)
  const rec = raw as Record<string, unknown>
  if (rec['v'] !== CONTROL_VERSION)
    throw new ControlProtocolError(
      `${what} has version ${JSON.stringify(rec['v'])}, expected ${CONTROL_VERSION}`,
    )
  return rec
}

export function parseControlRequest(line: string): ControlRequest {
  const rec = object(line, 'the request')
  const cmd = rec['cmd']
  if (typeof cmd !== 'string' || !(COMMANDS as readonly string[]).includes(cmd))
    throw new ControlProtocolError(`cmd must be one of ${COMMANDS.join(', ')}, got ${JSON.stringify(cmd)}`)
  return { v: CONTROL_VERSION, cmd: cmd as ControlCommand }
}

export function parseControlReply(line: string): ControlReply {
  const rec = object(line, 'the reply')
  if (rec['ok'] === false) return { v: CONTROL_VERSION, ok: false, error: String(rec['error']).slice(0, 500) }
  const mode = rec['mode']
  if (rec['ok'] !== true || (mode !== 'running' && mode !== 'paused' && mode !== 'finishing'))
    throw new ControlProtocolError('the reply has no ok and mode')
  const pid = rec['pid']
  if (typeof pid !== 'number' || !Number.isSafeInteger(pid))
    throw new ControlProtocolError('the reply has no pid')
  return { v: CONTROL_VERSION, ok: true, mode, pid }
}

/**
 * Splits a byte stream into lines of at most `MAX_CONTROL_LINE` bytes; `onLine` gets each, `onTooLong`
 * is called once when a line grows past the bound (the caller then closes the connection).
 */
export function lineReader(onLine: (line: string) => void, onTooLong: () => void): (chunk: Buffer) => void {
  let buf = Buffer.alloc(0)
  let over = false
  return (chunk) => {
    if (over) return
    buf = Buffer.concat([buf, chunk])
    for (let i = buf.indexOf(10); i >= 0; i = buf.indexOf(10)) {
      const line = buf.subarray(0, i).toString('utf8')
      buf = buf.subarray(i + 1)
      if (i > MAX_CONTROL_LINE) {
        over = true
        return onTooLong()
      }
      onLine(line)
    }
    if (buf.length > MAX_CONTROL_LINE) {
      over = true
      onTooLong()
    }
  }
}
