// Thread entry: many simulated volunteers on one event loop. Each is the real worker daemon
// (createWorkerDaemon: its work filler, waits, wake-ups on work.available, unit checks, lease renewals
// and result batches) with an identity of its own, signed up through the coordinator's real endpoint,
// and a NATS connection of its own logged in with the credentials issued to it; only the computation
// is replaced: a unit's output is computed (tiny units take microseconds) and the unit then takes a
// fixed delay, so hundreds of volunteers fit on one thread. Peer exchange is off (the overlay is
// measured on its own). Lease latency is timed on the connection: work request sent -> its units
// verified and held (the daemon's `held` event naming replicas it did not hold before).
import type { NatsConnection } from '@nats-io/nats-core'
import { parentPort, workerData, type MessagePort } from 'node:worker_threads'
import { builtinJobTypes, primes } from '../jobs/index.js'
import { decode, generateIdentity, subjectsFor } from '../shared/index.js'
import {
  createWorkerDaemon,
  runUnit,
  trustedKeysFrom,
  type Runner,
  type WorkerDaemon,
} from '../worker/index.js'
import { benchLogger } from './log.js'
import { volunteerConnection } from './nats-login.js'
import type {
  VolunteersInit,
  VolunteersReply,
  VolunteersReport,
  VolunteersRequest,
} from './scale-protocol.js'
import { now } from './stats.js'
import { PRIMES_KIND } from './workload.js'

function hostPort(): MessagePort {
  if (parentPort === null) throw new Error('scale-volunteers.js runs as a worker thread')
  return parentPort
}

const port = hostPort()
const init = workerData as VolunteersInit
const subjects = subjectsFor(init.subjectPrefix)
const trusted = trustedKeysFrom([init.trusted])
const log = benchLogger('volunteer')
/** Sign-ups and connections in flight at once on this thread. */
const CONNECT_PARALLEL = 8

const report: VolunteersReport = {
  type: 'report',
  leaseMs: [],
  workRequests: 0,
  emptyGrants: 0,
  resultsAccepted: 0,
  resultsRejected: 0,
  renewals: 0,
}

/** The unit's real output, then a fixed delay instead of the rest of the computation. */
const delayRunner: Runner = {
  threads: 1,
  kinds: new Set([PRIMES_KIND]),
  async run(task, signal) {
    const outcome = await runUnit(task, builtinJobTypes)
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, init.unitDelayMs)
      signal.addEventListener(
        'abort',
        () => {
          clearTimeout(timer)
          reject(new Error('unit aborted'))
        },
        { once: true },
      )
    })
    return { ...outcome, computeMs: init.unitDelayMs }
  },
  close: () => Promise.resolve(),
}

interface Volunteer {
  nats: NatsConnection
  daemon: WorkerDaemon
}

/**
 * The connection the daemon uses, with its work requests timed: the time a request that brought units
 * was sent, until the daemon holds replicas it did not hold before.
 */
function timedConnection(nc: NatsConnection, onGrant: (sentAt: number) => void): NatsConnection {
  const request: NatsConnection['request'] = async (subject, payload, opts) => {
    const sentAt = now()
    const msg = await nc.request(subject, payload, opts)
    if (subject === subjects.leaseRenew) report.renewals++
    if (subject === subjects.workRequest) {
      report.workRequests++
      const units = (decode(msg.data) as { units?: unknown[] } | undefined)?.units
      if (Array.isArray(units) && units.length > 0) onGrant(sentAt)
      else report.emptyGrants++
    }
    return msg
  }
  return new Proxy(nc, {
    get(target, prop) {
      if (prop === 'request') return request
      const value = Reflect.get(target, prop, target) as unknown
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
    },
  })
}

async function startVolunteer(i: number): Promise<Volunteer> {
  const identity = await generateIdentity(true)
  const coordinatorUrl =
    init.coordinatorUrls.length === 0 ? undefined : init.coordinatorUrls[i % init.coordinatorUrls.length]
  const nats = await volunteerConnection(init.natsUrl, coordinatorUrl, identity, `bench-scale-${i}`)
  let grantSentAt: number | undefined
  const heldBefore = new Set<string>()
  const daemon = createWorkerDaemon({
    nats: timedConnection(nats, (sentAt) => {
      grantSentAt = sentAt
    }),
    identity,
    trusted,
    runner: delayRunner,
    jobTypes: [primes],
    log,
    subjectPrefix: init.subjectPrefix,
    peers: false,
  })
  daemon.on('held', (ids) => {
    if (grantSentAt !== undefined && ids.some((id) => !heldBefore.has(id))) {
      report.leaseMs.push(now() - grantSentAt)
      grantSentAt = undefined
    }
    heldBefore.clear()
    for (const id of ids) heldBefore.add(id)
  })
  return { nats, daemon }
}

const volunteers: Volunteer[] = []

async function connectAll(): Promise<void> {
  let next = 0
  const lane = async (): Promise<void> => {
    while (next < init.count) {
      const i = next++
      volunteers.push(await startVolunteer(init.firstIndex + i))
    }
  }
  await Promise.all(Array.from({ length: Math.min(CONNECT_PARALLEL, init.count) }, lane))
}

async function stopAll(): Promise<void> {
  await Promise.allSettled(volunteers.map((v) => v.daemon.stop({ drainTimeoutMs: 0 })))
  await Promise.allSettled(volunteers.map((v) => v.nats.drain().catch(() => v.nats.close())))
}

function reply(r: VolunteersReply): void {
  port.postMessage(r)
}

port.on('message', (req: VolunteersRequest) => {
  if (req.type === 'start') {
    for (const v of volunteers) v.daemon.start()
    reply({ type: 'ready' })
  } else if (req.type === 'report') {
    const sum = (f: (v: Volunteer) => number): number => volunteers.reduce((n, v) => n + f(v), 0)
    reply({
      ...report,
      resultsAccepted: sum((v) => v.daemon.stats.resultsAccepted),
      resultsRejected: sum((v) => v.daemon.stats.resultsRejected),
    })
  } else {
    stopAll().then(
      () => reply({ type: 'stopped' }),
      (err: unknown) => reply({ type: 'failed', message: String(err) }),
    )
  }
})

connectAll().then(
  () => reply({ type: 'ready' }),
  (err: unknown) => {
    reply({ type: 'failed', message: `connecting volunteers: ${String(err)}` })
    void stopAll()
  },
)
