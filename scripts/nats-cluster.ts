// A private NATS cluster: `nodes` nats-servers joined by routes, and a leaf node that connects to
// them, the topology docs/deployment.md recommends (coordinators on the cluster, volunteers through
// leaf nodes). Every server runs in operator mode with the same trust chain (`resolver: MEMORY`
// with the same account JWTs preloaded), so a user JWT of the Cohort account logs in on any of them,
// and the leaf node logs in to the cluster as a user of that account (`leaf.creds`).
import { mkdir, writeFile } from 'node:fs/promises'
import { get } from 'node:http'
import { join } from 'node:path'
import { credsFile, issueCoordinatorUser, trustConfigLines, type NatsTrust } from '../coordinator/index.js'
import { freePorts } from './free-port.js'
import { createTrustFiles, httpOk, writeSecret, type NatsUserCredentials } from './nats-server.js'
import { spawnServer, waitReady, type ServerProcess } from './server-process.js'

export interface NatsClusterNode {
  /** Server name (`n0`, `n1`, ... and `leaf`). */
  readonly name: string
  /** nats:// URL clients connect to. */
  readonly url: string
  readonly monitorUrl: string
  readonly pid: number
  /** Sends `signal` (default SIGKILL) and waits for the server to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>
  /** Stops the server if it runs and starts it again on the same ports with the same config. */
  restart(): Promise<void>
}

export interface NatsCluster {
  /** The cluster's nodes (routes between every pair). */
  readonly nodes: readonly NatsClusterNode[]
  /** The leaf node volunteers connect through. */
  readonly leaf: NatsClusterNode
  /** The cluster nodes' client URLs, comma-separated (NATS_URL for coordinators). */
  readonly url: string
  /** A user of the Cohort account with every permission, for coordinators. */
  readonly coordinator: NatsUserCredentials
  /** The Cohort account's seed: coordinators issue volunteers' credentials with it. */
  readonly accountSeed: string
  /** `coordinator.creds` and `account.nk`, mode 0600, for child processes. */
  readonly files: { creds: string; accountSeed: string }
  stop(): Promise<void>
}

export interface NatsClusterOptions {
  binary: string
  /** Directory for the nodes' config and credentials files; created when missing. */
  dir: string
  /** Cluster nodes (default 3). */
  nodes?: number
  log: (line: string) => void
  timeoutMs?: number
}

interface NodePorts {
  client: number
  monitor: number
  /** Route port (cluster nodes) and leaf node port (where the leaf node connects). */
  route: number
  leafnodes: number
}

const common = (name: string, ports: { client: number; monitor: number }, trust: NatsTrust): string[] => [
  `server_name: ${name}`,
  `listen: "127.0.0.1:${ports.client}"`,
  `http: "127.0.0.1:${ports.monitor}"`,
  `max_payload: 8MB`,
  // Seconds a client has to log in; the default (2 s) is too short for a loaded 2-core machine.
  `authorization {`,
  `  timeout: 10`,
  `}`,
  ...trustConfigLines(trust),
]

function nodeConfig(name: string, own: NodePorts, all: readonly NodePorts[], trust: NatsTrust): string {
  const routes = all.filter((p) => p !== own).map((p) => `nats-route://127.0.0.1:${p.route}`)
  return [
    ...common(name, own, trust),
    `cluster {`,
    `  name: cohort`,
    `  listen: "127.0.0.1:${own.route}"`,
    `  routes: [${routes.map((r) => JSON.stringify(r)).join(', ')}]`,
    `}`,
    `leafnodes {`,
    `  listen: "127.0.0.1:${own.leafnodes}"`,
    `}`,
  ].join('\n')
}

/** The leaf node binds its Cohort account to the cluster's, logging in with `credentials`. */
function leafConfig(
  own: { client: number; monitor: number },
  hubs: readonly NodePorts[],
  trust: NatsTrust,
  credentials: string,
): string {
  const urls = hubs.map((p) => JSON.stringify(`nats-leaf://127.0.0.1:${p.leafnodes}`))
  return [
    ...common('leaf', own, trust),
    `leafnodes {`,
    `  reconnect: 1`,
    `  remotes: [{`,
    `    urls: [${urls.join(', ')}]`,
    `    account: ${JSON.stringify(trust.account.publicKey)}`,
    `    credentials: ${JSON.stringify(credentials)}`,
    `  }]`,
    `}`,
  ].join('\n')
}

/** GET a monitoring endpoint as JSON (undefined on any failure). */
function monitorJson(url: string): Promise<Record<string, unknown> | undefined> {
  return new Promise((resolve) => {
    const request = get(url, { timeout: 1000 }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => (body += chunk))
      response.on('end', () => {
        try {
          resolve(JSON.parse(body) as Record<string, unknown>)
        } catch {
          resolve(undefined)
        }
      })
      response.on('error', () => resolve(undefined))
    })
    request.on('timeout', () => request.destroy())
    request.on('error', () => resolve(undefined))
  })
}

export async function startNatsCluster(opts: NatsClusterOptions): Promise<NatsCluster> {
  const count = opts.nodes ?? 3
  if (!Number.isSafeInteger(count) || count < 2 || count > 9) throw new Error('nodes must be 2..9')
  await mkdir(opts.dir, { recursive: true })
  const { trust, coordinator, files } = await createTrustFiles(opts.dir)
  // The leaf node's own login to the cluster: a user of the Cohort account, like a coordinator.
  const leafUser = issueCoordinatorUser(trust.account.seed, 'leaf-node')
  const leafCreds = join(opts.dir, 'leaf.creds')
  await writeSecret(leafCreds, credsFile(leafUser.jwt, leafUser.seed))

  const ports = await freePorts(count * 4 + 2)
  const take = (i: number): number => ports[i] ?? 0
  const hubs: NodePorts[] = Array.from({ length: count }, (_, i) => ({
    client: take(i * 4),
    monitor: take(i * 4 + 1),
    route: take(i * 4 + 2),
    leafnodes: take(i * 4 + 3),
  }))
  const leafPorts = { client: take(count * 4), monitor: take(count * 4 + 1) }

  const started: ServerProcess[] = []
  const makeNode = async (name: string, text: string, monitor: number, client: number) => {
    const file = join(opts.dir, `${name}.conf`)
    await writeFile(file, text + '\n', { mode: 0o600 })
    const launch = async (): Promise<ServerProcess> => {
      const server = spawnServer(`nats-server ${name}`, opts.binary, ['-c', file], opts.log)
      started.push(server)
      await waitReady(server, () => httpOk(`http://127.0.0.1:${monitor}/healthz`), opts.timeoutMs)
      return server
    }
    let current = await launch()
    const node: NatsClusterNode = {
      name,
      url: `nats://127.0.0.1:${client}`,
      monitorUrl: `http://127.0.0.1:${monitor}`,
      get pid() {
        return current.pid
      },
      kill: (signal = 'SIGKILL') => current.kill(signal),
      async restart() {
        await current.stop()
        current = await launch()
        opts.log(`nats-server ${name} restarted, pid ${current.pid}`)
      },
    }
    return node
  }

  const stopAll = async (): Promise<void> => {
    await Promise.all(started.map((s) => s.stop()))
  }
  try {
    const nodes: NatsClusterNode[] = []
    for (const [i, p] of hubs.entries()) {
      nodes.push(await makeNode(`n${i}`, nodeConfig(`n${i}`, p, hubs, trust), p.monitor, p.client))
    }
    const leaf = await makeNode(
      'leaf',
      leafConfig(leafPorts, hubs, trust, leafCreds),
      leafPorts.monitor,
      leafPorts.client,
    )
    // Ready once every node routes to every other and the leaf node is connected.
    const deadline = Date.now() + (opts.timeoutMs ?? 15_000)
    const formed = async (): Promise<boolean> => {
      const routes = await Promise.all(nodes.map((n) => monitorJson(`${n.monitorUrl}/routez`)))
      const leafz = await monitorJson(`${leaf.monitorUrl}/leafz`)
      return (
        routes.every((r) => Number(r?.['num_routes'] ?? 0) >= count - 1) &&
        Number(leafz?.['leafnodes'] ?? 0) >= 1
      )
    }
    while (!(await formed())) {
      if (Date.now() > deadline) throw new Error('the NATS cluster did not form (routes, leaf node) in time')
      await new Promise((r) => setTimeout(r, 50))
    }
    opts.log(`NATS cluster of ${count} nodes (${nodes.map((n) => n.url).join(', ')}), leaf node ${leaf.url}`)
    return {
      nodes,
      leaf,
      url: nodes.map((n) => n.url).join(','),
      coordinator,
      accountSeed: trust.account.seed,
      files,
      stop: stopAll,
    }
  } catch (err) {
    await stopAll()
    throw err
  }
}
