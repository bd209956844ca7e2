// Cohort on a NATS cluster: three nodes joined by routes, coordinators and daemons on different
// nodes, volunteers through a leaf node. Killing a node mid-job delays the job and loses nothing:
// clients reconnect to another node (the leaf node too), and no unit is accepted twice.
// Serial: each test kills a node of the file's cluster and starts it again.
import test, { type ExecutionContext } from 'ava'
import { get } from 'node:http'
import { jobUnitResults, startCluster, waitForJob, waitUntil, type TestWorker } from './helpers/cluster.js'
import { useNatsCluster } from './helpers/nats-cluster.js'
import { gate } from './helpers/runners.js'

const servers = useNatsCluster(test)

/** The names of the clients connected to the node at `monitorUrl` (from /connz). */
function clientNames(monitorUrl: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    get(`${monitorUrl}/connz`, { timeout: 2000 }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => (body += chunk))
      response.on('end', () => {
        const connz = JSON.parse(body) as { connections?: { name?: string }[] }
        resolve((connz.connections ?? []).map((c) => c.name ?? ''))
      })
    }).on('error', reject)
  })
}

/** The cluster node a daemon's NATS connection is on. */
function nodeOf(worker: TestWorker) {
  const server = worker.nats.getServer()
  return servers().nats.nodes.find((n) => n.url.endsWith(server))
}

/**
 * π(4·10^7) over 40 units at quorum 2: one coordinator on `coordinatorNatsUrl`, one daemon on the
 * cluster nodes n1 and n2 (it picks one), one through the leaf node; each runs four units, then waits
 * at a gate, so the job is part-way however fast the machine, until `go()`.
 */
async function jobUnderWay(t: ExecutionContext, coordinatorNatsUrl: string) {
  const { services, nats } = servers()
  const cluster = await startCluster({ services, coordinatorNatsUrl })
  t.teardown(() => cluster.stop())
  const held = gate(4)
  const hub = await cluster.addWorker({
    wrap: held.wrap,
    natsUrl: `${nats.nodes[1]!.url},${nats.nodes[2]!.url}`,
  })
  const leaf = await cluster.addWorker({ wrap: held.wrap, natsUrl: nats.leaf.url })
  const job = await cluster.api.submit({ type: 'primes', params: { to: 40_000_000, unitSize: 1_000_000 } })
  await waitUntil('both workers at the gate', () => held.waiting === 2)
  t.is((await cluster.api.job(job.id)).state, 'running')
  t.is(leaf.nats.getServer(), nats.leaf.url.replace('nats://', ''))
  return { cluster, job, hub, leaf, go: () => held.open() }
}

/** The job completed with the right count, every unit from exactly two replicas of two workers. */
async function completedOnce(t: ExecutionContext, c: Awaited<ReturnType<typeof jobUnderWay>>) {
  const done = await waitForJob(c.cluster.api, c.job.id)
  t.is(done.state, 'completed')
  t.like((await c.cluster.api.result(c.job.id)).result, { count: 2_433_654 })
  t.is(done.units.validated, done.units.total)
  const results = await jobUnitResults(c.cluster, c.job.id, done.units.total)
  const twice = results.filter(
    (rs) =>
      rs.length !== 2 ||
      new Set(rs.map((r) => r.replicaId)).size !== rs.length ||
      new Set(rs.map((r) => r.worker)).size !== rs.length,
  )
  t.deepEqual(twice, [], 'a unit has other than two results from two replicas of two workers')
  // Both daemons worked on it: the one on the cluster and the one behind the leaf node.
  const workers = new Set(results.flat().map((r) => r.worker))
  t.true(workers.has(c.hub.identity.id) && workers.has(c.leaf.identity.id))
}

test.serial(
  'nats cluster - the daemons’ node killed mid-job: they reconnect to another node and the job completes',
  async (t) => {
    const { nats } = servers()
    const c = await jobUnderWay(t, nats.nodes[0]!.url)
    const node = nodeOf(c.hub)
    if (node === undefined) throw new Error(`the daemon is on no cluster node: ${c.hub.nats.getServer()}`)
    t.not(node, nats.nodes[0], 'the daemon shares no node with the coordinator')
    await node.kill('SIGKILL')
    t.teardown(() => node.restart())
    await waitUntil('the daemon on another node', () => {
      const now = nodeOf(c.hub)
      return now !== undefined && now !== node && !c.hub.nats.isClosed()
    })
    c.go()
    await completedOnce(t, c)
    t.true(c.cluster.workers.every((w) => !w.nats.isClosed()))
  },
)

test.serial(
  'nats cluster - the coordinator’s node killed mid-job: it reconnects to another node and the job completes',
  async (t) => {
    const { nats } = servers()
    const c = await jobUnderWay(t, nats.url)
    const named = await Promise.all(nats.nodes.map((n) => clientNames(n.monitorUrl)))
    const node = nats.nodes.find((_, i) => named[i]!.includes('cohort-coordinator'))
    if (node === undefined) throw new Error('the coordinator is on no cluster node')
    await node.kill('SIGKILL')
    t.teardown(() => node.restart())
    await waitUntil('the coordinator on another node', async () => {
      const up = nats.nodes.filter((n) => n !== node)
      const names = await Promise.all(up.map((n) => clientNames(n.monitorUrl).catch((): string[] => [])))
      return names.some((ns) => ns.includes('cohort-coordinator'))
    })
    c.go()
    await completedOnce(t, c)
  },
)
