// Test helper: a private Redis Cluster (3 primaries, 3 replicas) and a private NATS, in a fresh temp
// dir; stop() kills every process and removes the dir.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ensureBinaries, findBinary } from '../../scripts/install-packages.js'
import { startRedisCluster, type RedisCluster } from '../../scripts/redis-cluster.js'
import { startServices } from '../../scripts/services.js'
import type { TestServices } from './services.js'

export interface RedisClusterServices {
  /** NATS, with `redisUrl` the cluster's `redis-cluster://` URL. */
  services: TestServices
  redis: RedisCluster
}

export async function startRedisClusterServices(): Promise<RedisClusterServices> {
  const dataDir = await mkdtemp(join(tmpdir(), 'cohort-test-'))
  const lines: string[] = []
  const log = (line: string) => {
    lines.push(line)
    if (process.env['COHORT_TEST_LOG']) console.error(`[services] ${line}`)
  }
  let redis: RedisCluster | undefined
  try {
    // redis-cli comes with the redis-server package (Debian's redis-tools, a dependency of it).
    const binaries = await ensureBinaries(['redis-server'], log)
    const cli = findBinary('redis-cli')
    if (cli === undefined) throw new Error('redis-cli not found (Debian package redis-tools)')
    redis = await startRedisCluster({
      binary: binaries['redis-server'],
      cliBinary: cli,
      dir: join(dataDir, 'redis'),
      log,
      nodeTimeoutMs: 1000,
    })
    const cluster = redis
    const base = await startServices({ dataDir, log, redisUrl: cluster.url })
    const stopNats = base.stop.bind(base)
    const services: TestServices = Object.assign(base, {
      dataDir,
      async stop() {
        await Promise.all([stopNats(), cluster.stop()])
        await rm(dataDir, { recursive: true, force: true })
      },
    })
    return { services, redis: cluster }
  } catch (err) {
    await redis?.stop()
    await rm(dataDir, { recursive: true, force: true })
    throw new Error(`could not start the test Redis Cluster:\n${lines.join('\n')}`, { cause: err })
  }
}
