// Test helper: a private Redis and a private NATS cluster (3 nodes joined by routes, plus a leaf node
// volunteers connect through), for tests of Cohort on the topology docs/deployment.md recommends.
import type { TestFn } from 'ava'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ensureBinaries } from '../../scripts/install-packages.js'
import { startNatsCluster, type NatsCluster } from '../../scripts/nats-cluster.js'
import { startServices } from '../../scripts/services.js'
import type { TestServices } from './services.js'

export interface ClusterServices {
  /** Redis, with `natsUrl` = every cluster node (comma-separated) and the cluster's credentials. */
  services: TestServices
  nats: NatsCluster
}

async function start(): Promise<ClusterServices> {
  const dataDir = await mkdtemp(join(tmpdir(), 'cohort-test-'))
  const lines: string[] = []
  const log = (line: string) => {
    lines.push(line)
    if (process.env['COHORT_TEST_LOG']) console.error(`[services] ${line}`)
  }
  let nats: NatsCluster | undefined
  try {
    const binaries = await ensureBinaries(['nats-server'], log)
    nats = await startNatsCluster({ binary: binaries['nats-server'], dir: join(dataDir, 'nats'), log })
    const base = await startServices({ dataDir, log, natsUrl: nats.url })
    const cluster = nats
    const stopRedis = base.stop.bind(base)
    const services: TestServices = Object.assign(base, {
      dataDir,
      natsCoordinator: cluster.coordinator,
      natsAccountSeed: cluster.accountSeed,
      natsFiles: cluster.files,
      async stop() {
        await Promise.all([stopRedis(), cluster.stop()])
        await rm(dataDir, { recursive: true, force: true })
      },
    })
    return { services, nats: cluster }
  } catch (err) {
    await nats?.stop()
    await rm(dataDir, { recursive: true, force: true })
    throw new Error(`could not start the test NATS cluster:\n${lines.join('\n')}`, { cause: err })
  }
}

/** Registers before/after hooks on `test` and returns a getter for the servers they start. */
export function useNatsCluster<Context>(test: TestFn<Context>): () => ClusterServices {
  let started: ClusterServices | undefined
  test.before(async () => {
    started = await start()
  })
  test.after.always(async () => {
    await started?.services.stop()
  })
  return () => {
    if (started === undefined) throw new Error('useNatsCluster: the servers have not started (before hook)')
    return started
  }
}
