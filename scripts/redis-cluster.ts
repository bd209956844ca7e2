// A private Redis Cluster: `primaries` primaries with one replica each, on free loopback ports, each
// node with append-only persistence in its own directory; a short node timeout, so a replica takes
// over from a failed primary within seconds (docs/redis-cluster.md).
import { spawn } from 'node:child_process'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { CohortError, TimeoutError } from '../shared/errors.js'
import { freePorts } from './free-port.js'
import { redisPing } from './redis-server.js'
import { spawnServer, waitReady, type ServerProcess } from './server-process.js'

export interface RedisClusterNode {
  readonly port: number
  readonly process: ServerProcess
}

export interface RedisCluster {
  /** `redis-cluster://127.0.0.1:p1,...`: every node as a seed. */
  readonly url: string
  readonly nodes: readonly RedisClusterNode[]
  /** The node that serves `slot` as primary now, as its live nodes see it. */
  primaryOf(slot: number): Promise<RedisClusterNode>
  /** The live replicas of `primary`. */
  replicasOf(primary: RedisClusterNode): Promise<RedisClusterNode[]>
  stop(): Promise<void>
}

export interface RedisClusterOptions {
  binary: string
  /** redis-cli, which creates the cluster (`--cluster create`). */
  cliBinary: string
  dir: string
  log: (line: string) => void
  primaries?: number
  /** `cluster-node-timeout`: how long a primary may be unreachable before its replica takes over. */
  nodeTimeoutMs?: number
  timeoutMs?: number
}

/** `CLUSTER INFO` etc. on one node, with a bound on connecting and on the reply. */
async function ask(port: number, ...args: string[]): Promise<string> {
  const r = new Redis({
    port,
    host: '127.0.0.1',
    lazyConnect: true,
    connectTimeout: 1000,
    commandTimeout: 2000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  })
  r.on('error', () => undefined)
  try {
    await r.connect()
    return String(await r.call(args[0] as string, ...args.slice(1)))
  } finally {
    r.disconnect()
  }
}

/** Runs `redis-cli --cluster create` and fails with its output unless it succeeds within `timeoutMs`. */
function createCluster(cli: string, ports: number[], timeoutMs: number): Promise<void> {
  const args = ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`)]
  args.push('--cluster-replicas', '1', '--cluster-yes')
  return new Promise((resolve, reject) => {
    const child = spawn(cli, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    const keep = (b: Buffer) => (out = (out + b.toString('utf8')).slice(-8000))
    child.stdout.on('data', keep)
    child.stderr.on('data', keep)
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.once('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      if (code === 0 && out.includes('[OK] All 16384 slots covered')) resolve()
      else reject(new CohortError(`redis-cli --cluster create failed (exit ${String(code)}):\n${out}`))
    })
  })
}

/** Whether every node reports `cluster_state:ok`, knows every node, and each replica is in sync. */
async function settled(ports: number[]): Promise<boolean> {
  for (const port of ports) {
    const info = await ask(port, 'CLUSTER', 'INFO')
    if (!info.includes('cluster_state:ok') || !info.includes(`cluster_known_nodes:${ports.length}`))
      return false
    const repl = await ask(port, 'INFO', 'replication')
    if (repl.includes('role:slave') && !repl.includes('master_link_status:up')) return false
  }
  return true
}

export async function startRedisCluster(opts: RedisClusterOptions): Promise<RedisCluster> {
  const count = 2 * (opts.primaries ?? 3)
  const timeoutMs = opts.timeoutMs ?? 30_000
  // Client ports and cluster bus ports, all free now (the bus is not port + 10000 here).
  const free = await freePorts(2 * count)
  const nodes: RedisClusterNode[] = []
  const stop = () => Promise.all(nodes.map((n) => n.process.stop())).then(() => undefined)
  try {
    for (let i = 0; i < count; i++) {
      const port = free[i] as number
      const dir = join(opts.dir, `node-${port}`)
      await mkdir(dir, { recursive: true })
      const args = [
        '--port', String(port),
        '--cluster-port', String(free[count + i]),
        '--bind', '127.0.0.1',
        '--dir', dir,
        '--cluster-enabled', 'yes',
        '--cluster-config-file', 'nodes.conf',
        '--cluster-node-timeout', String(opts.nodeTimeoutMs ?? 1000),
        '--appendonly', 'yes',
        '--appendfsync', 'everysec',
        '--save', '',
        '--daemonize', 'no',
      ] // prettier-ignore
      const server = spawnServer(`redis-server:${port}`, opts.binary, args, opts.log)
      nodes.push({ port, process: server })
      await waitReady(server, () => redisPing(port), timeoutMs)
    }
    const ports = nodes.map((n) => n.port)
    await createCluster(opts.cliBinary, ports, timeoutMs)
    const deadline = Date.now() + timeoutMs
    while (!(await settled(ports).catch(() => false))) {
      if (Date.now() > deadline)
        throw new TimeoutError(`Redis Cluster on ${ports.join(',')} not settled after ${timeoutMs} ms`)
      await new Promise((r) => setTimeout(r, 50))
    }
    opts.log(`redis cluster on 127.0.0.1:${ports.join(',')} (data in ${opts.dir})`)
  } catch (err) {
    await stop()
    throw err
  }

  return {
    url: `redis-cluster://${nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`,
    nodes,
    async primaryOf(slot) {
      for (const n of nodes) {
        if (n.process.exited) continue
        // CLUSTER SHARDS would do on 7.0 too; CLUSTER NODES is the older, plainer view.
        const lines = (await ask(n.port, 'CLUSTER', 'NODES').catch(() => '')).split('\n')
        for (const line of lines) {
          const f = line.split(' ')
          if (!(f[2] ?? '').includes('master') || (f[2] ?? '').includes('fail')) continue
          const serves = f.slice(8).some((r) => {
            const [a, b] = r.split('-').map(Number)
            return a !== undefined && slot >= a && slot <= (b ?? a)
          })
          const port = Number(/:(\d+)@/.exec(f[1] ?? '')?.[1])
          const node = nodes.find((x) => x.port === port)
          if (serves && node !== undefined) return node
        }
      }
      throw new CohortError(`no live primary serves slot ${slot}`)
    },
    async replicasOf(primary) {
      const id = (await ask(primary.port, 'CLUSTER', 'MYID')).trim()
      const lines = (await ask(primary.port, 'CLUSTER', 'NODES')).split('\n')
      const ports = lines
        .map((line) => line.split(' '))
        .filter((f) => f[3] === id && !(f[2] ?? '').includes('fail'))
        .map((f) => Number(/:(\d+)@/.exec(f[1] ?? '')?.[1]))
      return nodes.filter((n) => ports.includes(n.port) && !n.process.exited)
    },
    stop,
  }
}
