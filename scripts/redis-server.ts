// A private redis-server: append-only persistence in its own directory, on a free loopback port.
import { mkdir } from 'node:fs/promises'
import { connect } from 'node:net'
import { freePort } from './free-port.js'
import { spawnServer, waitReady, type ServerProcess } from './server-process.js'

export interface RedisServer {
  readonly url: string
  readonly port: number
  /** The pid of the running redis-server (changes on restart). */
  readonly pid: number
  /** Sends `signal` (default SIGKILL) and waits for redis-server to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>
  /** Stops redis-server if it runs, then starts it again on the same port with the same data. */
  restart(): Promise<void>
  stop(): Promise<void>
}

export interface RedisServerOptions {
  binary: string
  /** Directory for the append-only file; created when missing. */
  dir: string
  log: (line: string) => void
  timeoutMs?: number
}

/** Answers true when the server at 127.0.0.1:port replies +PONG to PING. */
export function redisPing(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' })
    let reply = ''
    const finish = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(timeoutMs, () => finish(false))
    socket.once('error', () => finish(false))
    socket.once('close', () => finish(false))
    socket.once('connect', () => socket.write('PING\r\n'))
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('latin1')
      if (reply.includes('\r\n')) finish(reply.startsWith('+PONG'))
    })
  })
}

export async function startRedisServer(opts: RedisServerOptions): Promise<RedisServer> {
  await mkdir(opts.dir, { recursive: true })
  const launch = async (port: number): Promise<ServerProcess> => {
    const args = [
      '--port', String(port),
      '--bind', '127.0.0.1',
      '--dir', opts.dir,
      '--appendonly', 'yes',
      '--appendfsync', 'everysec',
      '--save', '',
      '--daemonize', 'no',
    ] // prettier-ignore
    const server = spawnServer('redis-server', opts.binary, args, opts.log)
    await waitReady(server, () => redisPing(port), opts.timeoutMs).catch(async (err: unknown) => {
      await server.stop()
      throw err
    })
    return server
  }

  // Another process may take the free port before redis-server binds it: then try another one.
  let port = await freePort()
  let server: ServerProcess | undefined
  for (let attempt = 1; server === undefined; attempt++) {
    try {
      server = await launch(port)
    } catch (err) {
      if (attempt >= 3 || !/address already in use/i.test(String(err))) throw err
      port = await freePort()
    }
  }
  opts.log(`redis-server pid ${server.pid} listening on 127.0.0.1:${port} (data in ${opts.dir})`)

  let current: ServerProcess = server
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    get pid() {
      return current.pid
    },
    kill: (signal = 'SIGKILL') => current.kill(signal),
    async restart() {
      await current.stop()
      current = await launch(port)
      opts.log(`redis-server restarted, pid ${current.pid}`)
    },
    stop: () => current.stop(),
  }
}
