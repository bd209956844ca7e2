// A private nats-server with JetStream, a monitoring port and (optionally) a WebSocket listener.
import { randomBytes } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { get } from 'node:http'
import { join } from 'node:path'
import { freePorts } from './free-port.js'
import { spawnServer, waitReady, type ServerProcess } from './server-process.js'

/** The coordinators' NATS account on the private server; volunteers connect without credentials. */
export interface NatsCredentials {
  user: string
  pass: string
}

export interface NatsServer {
  readonly url: string
  /** Full permissions, for coordinators (and tests acting as one). */
  readonly coordinator: NatsCredentials
  /** ws:// URL for browsers, when the WebSocket listener is on. */
  readonly wsUrl: string | undefined
  /** http:// URL of the monitoring endpoints (/healthz, /varz, ...). */
  readonly monitorUrl: string
  /** The pid of the running nats-server (changes on restart). */
  readonly pid: number
  /** Sends `signal` (default SIGKILL) and waits for nats-server to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>
  /** Stops nats-server if it runs, then starts it again with the same ports, config and JetStream store. */
  restart(): Promise<void>
  stop(): Promise<void>
}

export interface NatsServerOptions {
  binary: string
  /** Directory for the config file and the JetStream store; created when missing. */
  dir: string
  websocket: boolean
  log: (line: string) => void
  timeoutMs?: number
}

interface Ports {
  client: number
  monitor: number
  websocket: number | undefined
}

/**
 * Roles: a connection without credentials is a volunteer, kept to the subjects of its role — it may
 * ask for work, submit results, renew, release or claim leases and fetch modules and chunks (any
 * subject prefix of one token), hear `work.available`, and receive its own replies. Among peers it
 * may announce itself, hear announcements, send to any peer's subject, listen on peers' subjects
 * (`allow_responses` lets it answer a request it received, and nothing else under `_INBOX`). It can
 * neither read other volunteers' results nor answer as a coordinator. Coordinators log in with the
 * `coordinator` credentials.
 */
export const VOLUNTEER_PUBLISH = [
  '*.v1.work.request',
  '*.v1.result.submit',
  '*.v1.lease.renew',
  '*.v1.lease.release',
  '*.v1.module.get',
  '*.v1.chunk.get',
  '*.v1.lease.claim',
  '*.v1.peer.announce',
  '*.v1.peer.to.*',
]
export const VOLUNTEER_SUBSCRIBE = ['_INBOX.>', '*.v1.work.available', '*.v1.peer.announce', '*.v1.peer.to.*']

function config(dir: string, ports: Ports, coordinator: NatsCredentials): string {
  const list = (xs: string[]): string => `[${xs.map((x) => JSON.stringify(x)).join(', ')}]`
  const lines = [
    `listen: "127.0.0.1:${ports.client}"`,
    `http: "127.0.0.1:${ports.monitor}"`,
    `max_payload: 8MB`,
    `jetstream {`,
    `  store_dir: ${JSON.stringify(join(dir, 'jetstream'))}`,
    `}`,
    `authorization {`,
    // Seconds a client has to log in; the default (2 s) is too short for a loaded 2-core machine.
    `  timeout: 10`,
    `  users: [`,
    `    { user: ${JSON.stringify(coordinator.user)}, password: ${JSON.stringify(coordinator.pass)} }`,
    `    { user: "volunteer", password: "volunteer", permissions: {`,
    `        publish: { allow: ${list(VOLUNTEER_PUBLISH)} }`,
    `        subscribe: { allow: ${list(VOLUNTEER_SUBSCRIBE)} }`,
    `        allow_responses: true } }`,
    `  ]`,
    `}`,
    `no_auth_user: "volunteer"`,
  ]
  if (ports.websocket !== undefined) {
    lines.push(
      `websocket {`,
      `  listen: "127.0.0.1:${ports.websocket}"`,
      `  no_tls: true`,
      `  no_auth_user: "volunteer"`,
      `}`,
    )
  }
  return lines.join('\n') + '\n'
}

/** Answers true when GET url answers 200 with a body that says ok. */
export function httpOk(url: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const request = get(url, { timeout: timeoutMs }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => (body += chunk))
      response.on('end', () => resolve(response.statusCode === 200 && /ok/i.test(body)))
      response.on('error', () => resolve(false))
    })
    request.on('timeout', () => request.destroy())
    request.on('error', () => resolve(false))
  })
}

export async function startNatsServer(opts: NatsServerOptions): Promise<NatsServer> {
  await mkdir(opts.dir, { recursive: true })
  const configFile = join(opts.dir, 'nats.conf')
  const pickPorts = async (): Promise<Ports> => {
    const [client = 0, monitor = 0, websocket] = await freePorts(opts.websocket ? 3 : 2)
    return { client, monitor, websocket }
  }
  const launch = async (ports: Ports): Promise<ServerProcess> => {
    const server = spawnServer('nats-server', opts.binary, ['-c', configFile], opts.log)
    const healthz = `http://127.0.0.1:${ports.monitor}/healthz`
    await waitReady(server, () => httpOk(healthz), opts.timeoutMs).catch(async (err: unknown) => {
      await server.stop()
      throw err
    })
    return server
  }

  // Another process may take a free port before nats-server binds it: then try other ones.
  const coordinator: NatsCredentials = { user: 'coordinator', pass: randomBytes(18).toString('base64url') }
  let ports = await pickPorts()
  let server: ServerProcess | undefined
  for (let attempt = 1; server === undefined; attempt++) {
    await writeFile(configFile, config(opts.dir, ports, coordinator), { mode: 0o600 })
    try {
      server = await launch(ports)
    } catch (err) {
      if (attempt >= 3 || !/address already in use/i.test(String(err))) throw err
      ports = await pickPorts()
    }
  }
  const url = `nats://127.0.0.1:${ports.client}`
  const wsUrl = ports.websocket === undefined ? undefined : `ws://127.0.0.1:${ports.websocket}`
  opts.log(
    `nats-server pid ${server.pid} listening on ${url}${wsUrl ? ` and ${wsUrl}` : ''} (data in ${opts.dir})`,
  )

  let current: ServerProcess = server
  return {
    url,
    coordinator,
    wsUrl,
    monitorUrl: `http://127.0.0.1:${ports.monitor}`,
    get pid() {
      return current.pid
    },
    kill: (signal = 'SIGKILL') => current.kill(signal),
    async restart() {
      await current.stop()
      current = await launch(ports)
      opts.log(`nats-server restarted, pid ${current.pid}`)
    },
    stop: () => current.stop(),
  }
}
