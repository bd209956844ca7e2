// The daemon's control socket: `cohort worker pause|resume|finish|status` reach the running daemon
// here (worker/policy/control-protocol.ts). A stale socket left by a crashed daemon is removed at
// start; a live one (another daemon on the same state directory) is refused.
import { chmod, unlink } from 'node:fs/promises'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { errorFields, type Logger } from '../../shared/index.js'
import {
  CONTROL_IDLE_MS,
  CONTROL_VERSION,
  lineReader,
  parseControlRequest,
  type ControlCommand,
  type ControlReply,
} from './control-protocol.js'
import { controlSocketPath, prepareControlDir, UnsafeControlPathError } from './control-path.js'

/** What the socket may do to the daemon; each returns once the command took effect. */
export interface ControlTarget {
  pause(): Promise<void>
  resume(): void
  /** Begin finishing (no new work, running units end and are submitted, then exit); returns at once. */
  finish(): void
  mode(): 'running' | 'paused' | 'finishing'
}

export interface ControlSocket {
  readonly path: string
  stop(): Promise<void>
}

/** Whether something answers on `path` within a second (a live daemon), or not (a stale socket). */
async function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path)
    const timer = setTimeout(() => (s.destroy(), resolve(true)), 1000)
    s.once('connect', () => (clearTimeout(timer), s.destroy(), resolve(true)))
    s.once('error', () => (clearTimeout(timer), resolve(false)))
  })
}

export async function startControlSocket(
  stateDir: string,
  target: ControlTarget,
  log: Logger,
): Promise<ControlSocket> {
  const path = controlSocketPath(stateDir)
  if (await prepareControlDir(stateDir)) {
    if (await answers(path))
      throw new UnsafeControlPathError(`another worker is running with the state directory ${stateDir}`)
    log.info('removing a stale control socket', { path })
    await unlink(path)
  }
  const clients = new Set<Socket>()
  const run = async (cmd: ControlCommand): Promise<ControlReply> => {
    if (cmd === 'pause') await target.pause()
    else if (cmd === 'resume') target.resume()
    const reply: ControlReply = {
      v: CONTROL_VERSION,
      ok: true,
      mode: cmd === 'finish' ? 'finishing' : target.mode(),
      pid: process.pid,
    }
    // Finishing closes this socket: the reply goes first.
    if (cmd === 'finish')
      setImmediate(() => {
        try {
          target.finish()
        } catch (err) {
          log.warn('could not finish', errorFields(err))
        }
      })
    return reply
  }
  const server: Server = createServer((socket) => {
    clients.add(socket)
    socket.once('close', () => clients.delete(socket))
    socket.setTimeout(CONTROL_IDLE_MS, () => socket.destroy())
    socket.on('error', () => socket.destroy())
    const send = (r: ControlReply): void => void socket.write(JSON.stringify(r) + '\n')
    // Commands of one connection run in order.
    let queue = Promise.resolve()
    socket.on(
      'data',
      lineReader(
        (line) => {
          queue = queue.then(async () => {
            try {
              const req = parseControlRequest(line)
              log.info('control command', { cmd: req.cmd })
              send(await run(req.cmd))
            } catch (err) {
              log.warn('control request refused', errorFields(err))
              send({ v: CONTROL_VERSION, ok: false, error: (err as Error).message })
            }
          })
        },
        () => {
          send({ v: CONTROL_VERSION, ok: false, error: 'request too long' })
          socket.end()
        },
      ),
    )
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(path, () => (server.off('error', reject), resolve()))
  })
  // The directory is 0700 already; the socket itself is made owner-only too.
  await chmod(path, 0o600)
  log.info('control socket listening', { path })
  return {
    path,
    async stop() {
      for (const c of clients) c.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await unlink(path).catch(() => {})
    },
  }
}
