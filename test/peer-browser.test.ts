// A browser tab is a full peer: in real Chromium, a contribute tab and a worker daemon split a shared
// dataset's chunks between them over the peer overlay (NATS WebSocket on the tab's side), so the
// coordinator serves it about once; and when the volunteer presses Pause, the tab hands its buffered
// units to the daemon through coordinator-checked lease transfers instead of giving them back.
import { connect } from '@nats-io/transport-node'
import test, { type ExecutionContext } from 'ava'
import { knn, knnDataset } from '../jobs/index.js'
import { decode, manifestOf, open, parseEnvelope, parsePeerMessage, PEER_LIMITS } from '../shared/index.js'
import type { DatasetView } from '../client/index.js'
import { openContribute, useBrowser } from './helpers/browser.js'
import { jobUnitResults, startCluster, waitForJob, waitUntil, type Cluster } from './helpers/cluster.js'
import { asCoordinator, useServices } from './helpers/services.js'
import { parseParams } from '../coordinator/schema/index.js'

const services = useServices(test)
const browser = useBrowser(test)

/**
 * Chunk bytes peers sent each other, as seen on the wire: every peer reply travels to a requester's
 * inbox as a signed envelope, so a listener with the coordinators' rights can count the checked
 * `chunk` replies by sender and addressee.
 */
async function watchPeerChunks() {
  const nc = await connect(asCoordinator(services()))
  const bytes = new Map<string, number>()
  const pending = new Set<Promise<void>>()
  const count = async (data: Uint8Array): Promise<void> => {
    const max = PEER_LIMITS.maxMessageBytes
    const msg = parsePeerMessage(await open(parseEnvelope(decode(data, max), 'peer', max)))
    if (msg.type !== 'chunk') return
    const key = `${msg.worker}>${msg.to}`
    bytes.set(key, (bytes.get(key) ?? 0) + msg.bytes.length)
  }
  nc.subscribe('_INBOX.>', {
    callback: (_err, m) => {
      // Coordinator replies and other traffic are not peer envelopes: skipped.
      const p = count(m.data).catch(() => {})
      pending.add(p)
      void p.finally(() => pending.delete(p))
    },
  })
  await nc.flush()
  return {
    /** Bytes `from` sent `to`, once every reply seen so far is counted. */
    async sent(from: string, to: string): Promise<number> {
      await nc.flush()
      await Promise.all([...pending])
      return bytes.get(`${from}>${to}`) ?? 0
    },
    close: () => nc.close(),
  }
}

/** The job's answer computed here with the same kernel, every unit reading the same bytes. */
async function expectedKnn(bytes: Uint8Array, params: Record<string, unknown>) {
  const { root, encoded } = await manifestOf(bytes)
  const parsed = parseParams(knn, params)
  const env = { content: (r: string) => (r === root ? bytes : undefined) }
  const outputs = knn.split(parsed, (h) => (h === root ? encoded : undefined)).map((u) => knn.run(u, env))
  return knn.merge(parsed, outputs)
}

/**
 * A contribute tab on `url`, started (with `threads` Web Workers if given), and its contributor id;
 * with `gate`, its units wait at a gate the test opens (UnitGate).
 */
async function contributing(t: ExecutionContext, url: string, threads?: number, gate = false) {
  const tab = await openContribute(browser(), url, { gate })
  t.teardown(() => tab.close())
  if (threads !== undefined) {
    await tab.page.locator('#threads').fill(String(threads))
    await tab.waitFor(`${threads} Web Workers`, (s) => s.threads === threads)
  }
  await tab.page.click('#toggle')
  const { id } = await tab.waitFor('the tab computing', (s) => s.state === 'running')
  return { tab, tabId: id }
}

test.serial(
  'peer browser - a tab and a daemon compute a dataset job at quorum 2; the dataset crosses between them, not twice from the coordinator',
  async (t) => {
    const cluster = await startCluster({ services: services() })
    t.teardown(() => cluster.stop())
    const wire = await watchPeerChunks()
    t.teardown(() => wire.close())
    const url = cluster.coordinators[0]!.url
    const bytes = knnDataset(32_768, 64, 13) // 2 MiB, 32 chunks
    const upload = await fetch(`${url}/v1/datasets`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: bytes.slice(),
    })
    t.is(upload.status, 201, await upload.clone().text())
    const { root, chunks } = (await upload.json()) as DatasetView
    const { encoded: manifest } = await manifestOf(bytes)

    const { tab, tabId } = await contributing(t, url)
    const daemon = await cluster.addWorker()
    const peering = daemon.daemon.peering
    await waitUntil('the daemon hears the tab', () => peering.overlay.peers().some((p) => p.id === tabId))

    // Eight queries, one a unit, each unit computed by two workers.
    const params = { dim: 64, k: 5, queries: { count: 8, seed: 3 }, queriesPerUnit: 1, dataset: root }
    const done = await waitForJob(
      cluster.api,
      (await cluster.api.submit({ type: 'knn', params, redundancy: { quorum: 2 } })).id,
    )
    t.is(done.state, 'completed', JSON.stringify(done))
    t.deepEqual((await cluster.api.result(done.id)).result, await expectedKnn(bytes, params))
    const units = await jobUnitResults(cluster, done.id, done.units.total)
    units.forEach((rs, i) =>
      t.deepEqual(
        rs.map((r) => r.worker).sort(),
        [tabId, daemon.identity.id].sort(),
        `unit ${i}: one result from the tab, one from the daemon`,
      ),
    )
    const s = await tab.snapshot()
    t.is(s.stats?.resultsAccepted, done.units.total)
    t.is(s.stats?.unitsRefused, 0)

    // The tab holds the whole dataset and says so to its peers.
    await waitUntil('the tab announcing every chunk', () => {
      const has = peering.overlay
        .peers()
        .find((p) => p.id === tabId)
        ?.state.has.find((h) => h.root === root)
      return has !== undefined && [...has.bits].reduce((n, b) => n + popcount(b), 0) === chunks
    })
    t.truthy(peering.content.get(root)?.have.complete(), 'the daemon holds the whole dataset')

    // Each got part of the dataset from the other; the coordinator served it about once.
    const served = cluster.coordinators[0]!.counters.chunkBytesServed
    const tabToDaemon = await wire.sent(tabId, daemon.identity.id)
    const daemonToTab = await wire.sent(daemon.identity.id, tabId)
    const f = peering.fetcher.stats
    t.log(
      `dataset ${bytes.length} B: coordinator served ${served} B (daemon ${f.bytesFromCoordinator}), ` +
        `tab → daemon ${tabToDaemon} B, daemon → tab ${daemonToTab} B`,
    )
    t.is(f.bytesFromPeers, tabToDaemon, 'every peer chunk the daemon kept came from the tab')
    t.is(f.corruptChunks, 0)
    t.true(tabToDaemon > 0, 'the tab served chunks to the daemon')
    t.true(daemonToTab > 0, 'the tab fetched chunks from the daemon')
    t.true(served < 1.5 * bytes.length, `the coordinator served ${served} B, not 2 × ${bytes.length}`)
    const whole = bytes.length + manifest.length
    t.is(served + tabToDaemon + daemonToTab, 2 * whole, 'each chunk reached each peer exactly once')
    t.is(cluster.coordinators[0]!.counters.leasesExpired, 0)
    t.deepEqual(tab.problems, [], 'no console errors, CSP violations or page errors')
  },
)

/** Replicas of a job's units that `to` got through a lease transfer from `from`, by Redis. */
async function transferred(cluster: Cluster, jobId: string, total: number, from: string, to: string) {
  const store = cluster.coordinators[0]!.store
  let n = 0
  for (const rs of await jobUnitResults(cluster, jobId, total)) {
    for (const r of rs) {
      const state = await store.replicaState(r.replicaId)
      if (r.worker === to && state['transferredFrom'] === from) n++
    }
  }
  return n
}

test.serial(
  'peer browser - pressing Pause hands the tab’s buffered units to a daemon peer; the coordinator moves the leases, none expires',
  async (t) => {
    // Leases of 10 minutes: a unit that moved did not wait for an expiry.
    const cluster = await startCluster({ services: services(), tuning: { leaseMs: 600_000 } })
    t.teardown(() => cluster.stop())
    // Two Web Workers: the tab runs two units and buffers two more. Its units wait at a gate until the
    // test opens it, so the two it runs are still running when Pause is pressed, on any machine.
    const { tab, tabId } = await contributing(t, cluster.coordinators[0]!.url, 2, true)
    // A daemon with room that does not steal (only the tab's handoff may move units to it), paused
    // until the tab holds the whole job, and known to the tab before the clock matters.
    const daemon = await cluster.addWorker({ threads: 2, peers: { announceMs: 250, steal: false } })
    await daemon.daemon.pause()
    const peering = daemon.daemon.peering
    await waitUntil('the daemon hears the tab', () => peering.overlay.peers().some((p) => p.id === tabId))

    // Four units, all leased to the tab.
    const job = await cluster.api.submit({
      type: 'primes',
      params: { from: 16_000_000_000, to: 20_000_000_000, unitSize: 1_000_000_000 },
      redundancy: { quorum: 1 },
    })
    await tab.waitFor(
      'two units running and two buffered in the tab',
      (s) => s.stats?.running === 2 && s.stats.held === 4,
    )
    await waitUntil('both running units at the gate', async () => (await tab.gate!.arrived()) === 2)
    daemon.daemon.resume()
    // The tab hands its buffered units only to peers it knows to have room: it must have heard the
    // resumed daemon say so (its own table, not the daemon's count of announcements sent).
    await tab.waitFor('the tab knowing the daemon has room for two', (s) =>
      s.peers.some((p) => p.id === daemon.identity.id && p.free >= 2),
    )
    t.is(daemon.daemon.stats.held, 0, 'the coordinator had nothing left for the daemon')

    await tab.page.click('#toggle')
    const paused = await tab.waitFor(
      'paused, nothing buffered in the tab',
      (s) => s.state === 'paused' && s.stats !== undefined && s.stats.held === s.stats.running,
    )
    t.is(paused.stats?.running, 2, 'the units running in the tab go on')
    await tab.gate!.open()
    const done = await waitForJob(cluster.api, job.id)
    t.is(done.state, 'completed', JSON.stringify(done))
    t.like((await cluster.api.result(job.id)).result, { count: 169_406_895 })

    const moved = await transferred(cluster, job.id, done.units.total, tabId, daemon.identity.id)
    t.is(moved, 2, 'the two buffered units moved from the tab to the daemon')
    t.is(peering.exchange.stats.received, 2)
    t.is(daemon.daemon.stats.unitsDone, 2)
    t.is((await tab.snapshot()).stats?.unitsDone, 2, 'the tab finished the units it had started')
    const counters = cluster.coordinators[0]!.counters
    t.is(counters.leasesTransferred, 2)
    t.is(counters.leasesReleased, 0, 'nothing went back to the queue')
    t.is(counters.leasesExpired, 0, 'no unit waited for its lease to expire')
    const log = (await tab.page.textContent('#log')) ?? ''
    t.true(
      log.includes(`units handed off to a peer {"peer":"${daemon.identity.id}","claimed":2}`),
      'the tab says it handed two units to the daemon',
    )
    t.deepEqual(tab.problems, [])
  },
)

function popcount(b: number): number {
  let n = 0
  for (let x = b; x !== 0; x &= x - 1) n++
  return n
}
