// `cohort worker pause|resume|finish|status`: one command to the running daemon over its control
// socket, after checking the socket is this user's own (worker/policy/control-path.ts).
import { createConnection } from 'node:net'
import { CohortError } from '../../shared/index.js'
import {
  CONTROL_IDLE_MS,
  CONTROL_VERSION,
  ControlProtocolError,
  lineReader,
  parseControlReply,
  type ControlCommand,
  type ControlReply,
} from './control-protocol.js'
import { checkControlSocket } from './control-path.js'

/** The daemon refused the command. */
export class ControlCommandError extends CohortError {
  override name = 'ControlCommandError'
}

export async function sendControl(
  stateDir: string,
  cmd: ControlCommand,
  timeoutMs = CONTROL_IDLE_MS,
): Promise<Extract<ControlReply, { ok: true }>> {
  const path = await checkControlSocket(stateDir)
  const reply = await new Promise<ControlReply>((resolve, reject) => {
    const socket = createConnection(path)
    const fail = (err: Error): void => {
      clearTimeout(timer)
      socket.destroy()
      reject(err)
    }
    const timer = setTimeout(
      () => fail(new ControlCommandError(`the worker did not answer within ${timeoutMs} ms`)),
      timeoutMs,
    )
    socket.once('error', (err) =>
      fail(new ControlCommandError(`cannot reach the worker at ${path}: ${err.message}`, { cause: err })),
    )
    socket.on(
      'data',
      lineReader(
        (line) => {
          clearTimeout(timer)
          socket.end()
          try {
            resolve(parseControlReply(line))
          } catch (err) {
            reject(err instanceof Error ? err : new ControlProtocolError(String(err)))
          }
        },
        () => fail(new ControlProtocolError('the reply is too long')),
      ),
    )
    socket.write(JSON.stringify({ v: CONTROL_VERSION, cmd }) + '\n')
  })
  if (!reply.ok) throw new ControlCommandError(`the worker refused ${cmd}: ${reply.error}`)
  return reply
}
