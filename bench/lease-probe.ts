// Thread entry: volunteers that only measure leasing. Each identity signs up, then at a steady pace
// asks for one unit with the worker's own client (`createCoordinatorClient().requestWork`), checks
// it as the daemon does (`verifyUnit`: the coordinator's signature, addressee, expiry, input), and
// hands it straight back. On a thread of its own, so the coordinator's event loop does not delay the
// clock and the probes' signing does not delay the coordinator.
import type { NatsConnection } from '@nats-io/nats-core'
import { parentPort, workerData, type MessagePort } from 'node:worker_threads'
import { builtinJobTypes } from '../jobs/index.js'
import { generateIdentity, subjectsFor, type Identity } from '../shared/index.js'
import {
  createCoordinatorClient,
  trustedKeysFrom,
  verifyUnit,
  type CoordinatorClient,
} from '../worker/index.js'
import { volunteerConnection } from './nats-login.js'
import { now, sleep } from './stats.js'
import type { ProbeInit, ProbeReply, ProbeReport } from './lease-probe-protocol.js'

function probePort(): MessagePort {
  if (parentPort === null) throw new Error('lease-probe.js runs as a worker thread')
  return parentPort
}

const port = probePort()
const init = workerData as ProbeInit
const trusted = trustedKeysFrom([init.trusted])
const subjects = subjectsFor(init.subjectPrefix)
/** Unmeasured requests per identity first: connections warm, code compiled. */
const WARMUP_REQUESTS = 3
const REQUEST_TIMEOUT_MS = 5_000

interface Probe {
  identity: Identity
  nats: NatsConnection
  client: CoordinatorClient
}

const report: ProbeReport = {
  type: 'report',
  totalMs: [],
  verifyMs: [],
  empty: { rate: 0, leases: 0, none: 0 },
  failed: 0,
  spanMs: 0,
}

/** One work request for one unit, verified and handed back; the timings when a unit came. */
async function leaseOnce(p: Probe): Promise<{ totalMs: number; verifyMs: number } | undefined> {
  const started = now()
  const grant = await p.client.requestWork(1, init.accepts)
  const envelope = grant.units[0]
  if (envelope === undefined) {
    const by = grant.limit?.by ?? 'none'
    report.empty[by]++
    return undefined
  }
  const received = now()
  const unit = await verifyUnit(envelope, {
    trusted,
    self: p.identity.id,
    jobTypes: builtinJobTypes,
    now: Date.now(),
  })
  const verified = now()
  // Handed back at once: a fresh identity may hold only a few leases (leaseCapBase).
  await p.client.release([unit.replicaId], 'latency probe')
  return { totalMs: verified - started, verifyMs: verified - received }
}

async function connectProbe(i: number): Promise<Probe> {
  const identity = await generateIdentity(true)
  const nats = await volunteerConnection(init.natsUrl, init.coordinatorUrl, identity, `bench-probe-${i}`)
  const client = createCoordinatorClient({ nats, identity, subjects, timeoutMs: REQUEST_TIMEOUT_MS })
  return { identity, nats, client }
}

async function run(probes: Probe[], deadline: number): Promise<void> {
  const interval = 1000 / init.perIdentityPerSecond
  const measure = async (p: Probe, k: number): Promise<void> => {
    // Identities start spread over one interval, so requests do not arrive in lockstep.
    let next = now() + (interval * k) / probes.length
    for (let i = 0; report.totalMs.length < init.samples && now() < deadline; i++) {
      const wait = next - now()
      if (wait > 0) await sleep(wait)
      next += interval
      try {
        const t = await leaseOnce(p)
        if (t !== undefined && i >= WARMUP_REQUESTS && report.totalMs.length < init.samples) {
          report.totalMs.push(t.totalMs)
          report.verifyMs.push(t.verifyMs)
        }
      } catch (err) {
        report.failed++
        report.firstError ??= String(err)
      }
    }
  }
  const started = now()
  await Promise.all(probes.map((p, k) => measure(p, k)))
  report.spanMs = now() - started
}

async function main(): Promise<ProbeReply> {
  const deadline = now() + init.timeoutMs
  const probes: Probe[] = []
  try {
    for (let i = 0; i < init.identities; i++) probes.push(await connectProbe(i))
    await run(probes, deadline)
    if (report.totalMs.length < init.samples)
      report.firstError ??= `only ${report.totalMs.length} of ${init.samples} leases before the timeout`
    return report
  } finally {
    await Promise.allSettled(probes.map((p) => p.nats.drain().catch(() => p.nats.close())))
  }
}

main().then(
  (reply) => port.postMessage(reply),
  (err: unknown) => port.postMessage({ type: 'failed', message: String(err) } satisfies ProbeReply),
)
