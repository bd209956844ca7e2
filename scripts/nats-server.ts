// A private nats-server with JetStream, a monitoring port and (optionally) a WebSocket listener, in
// operator mode: nobody connects without a user JWT of the deployment's Cohort account.
import { chmod, mkdir, writeFile } from 'node:fs/promises'
import { get } from 'node:http'
import { join } from 'node:path'
import {
  createNatsTrust,
  credsFile,
  issueCoordinatorUser,
  trustConfigLines,
  type NatsTrust,
} from '../coordinator/index.js'
import { freePorts } from './free-port.js'
import { spawnServer, waitReady, type ServerProcess } from './server-process.js'

/** A NATS user login by JWT: the user JWT and the seed of its nkey. */
export interface NatsUserCredentials {
  jwt: string
  seed: string
}

export interface NatsServer {
  readonly url: string
  /** A user of the Cohort account with every permission, for coordinators (and tests acting as one). */
  readonly coordinator: NatsUserCredentials
  /** The Cohort account's seed: coordinators issue volunteers' credentials with it. */
  readonly accountSeed: string
  /** `coordinator.creds` (the coordinator login) and `account.nk` (the account seed), mode 0600. */
  readonly files: { creds: string; accountSeed: string }
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
  /** Directory for the config file, the credentials files and the JetStream store; created when missing. */
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
 * Operator mode with the account JWTs preloaded (`resolver: MEMORY`): every connection, TCP or
 * WebSocket, must present a user JWT issued by the Cohort account, and its permissions and limits
 * are the JWT's. There is no anonymous user. Coordinators log in with all permissions; volunteers get
 * theirs at sign-up (coordinator/credentials/volunteer-issuer.ts). JetStream runs on the server but
 * no account has it enabled, so no client can reach `$JS.>`.
 */
function config(dir: string, ports: Ports, trust: NatsTrust): string {
  const lines = [
    `listen: "127.0.0.1:${ports.client}"`,
    `http: "127.0.0.1:${ports.monitor}"`,
    `max_payload: 8MB`,
    `jetstream {`,
    `  store_dir: ${JSON.stringify(join(dir, 'jetstream'))}`,
    `}`,
    // Seconds a client has to log in; the default (2 s) is too short for a loaded 2-core machine.
    `authorization {`,
    `  timeout: 10`,
    `}`,
    ...trustConfigLines(trust),
  ]
  if (ports.websocket !== undefined) {
    lines.push(`websocket {`, `  listen: "127.0.0.1:${ports.websocket}"`, `  no_tls: true`, `}`)
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

/** Writes `text` to `file`, readable by its owner only (mode 0600). */
export async function writeSecret(file: string, text: string): Promise<void> {
  await writeFile(file, text, { mode: 0o600 })
  await chmod(file, 0o600)
}

/**
 * A fresh trust chain, the coordinators' login on it, and the two files (mode 0600) child processes
 * read: `coordinator.creds` and `account.nk` in `dir`.
 */
export async function createTrustFiles(dir: string): Promise<{
  trust: NatsTrust
  coordinator: NatsUserCredentials
  files: { creds: string; accountSeed: string }
}> {
  const trust = createNatsTrust()
  const coordinator = issueCoordinatorUser(trust.account.seed)
  const files = { creds: join(dir, 'coordinator.creds'), accountSeed: join(dir, 'account.nk') }
  await writeSecret(files.creds, credsFile(coordinator.jwt, coordinator.seed))
  await writeSecret(files.accountSeed, `${trust.account.seed}\n`)
  return { trust, coordinator, files }
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

  // One trust chain per server: its config, and the coordinators' login and account seed beside it.
  const { trust, coordinator, files } = await createTrustFiles(opts.dir)
  // Another process may take a free port before nats-server binds it: then try other ones.
  let ports = await pickPorts()
  let server: ServerProcess | undefined
  for (let attempt = 1; server === undefined; attempt++) {
    await writeFile(configFile, config(opts.dir, ports, trust), { mode: 0o600 })
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
    accountSeed: trust.account.seed,
    files,
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
