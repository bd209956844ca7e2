// Thread entry: the benchmark's worker daemons, on an event loop of their own so that the coordinator's
// figures are not mixed with theirs. Each daemon has its own NATS connection, identity and piscina pool.
import type { NatsConnection } from '@nats-io/nats-core'
import { performance } from 'node:perf_hooks'
import { parentPort, workerData, type MessagePort } from 'node:worker_threads'
import { builtinJobTypes } from '../jobs/index.js'
import { generateIdentity } from '../shared/index.js'
import {
  createPoolRunner,
  createWorkerDaemon,
  trustedKeysFrom,
  type Runner,
  type WorkerDaemon,
} from '../worker/index.js'
import { benchLogger } from './log.js'
import { volunteerConnection } from './nats-login.js'
import { median, now } from './stats.js'
import type { HostInit, HostReply, HostRequest } from './worker-host-protocol.js'

function hostPort(): MessagePort {
  if (parentPort === null) throw new Error('worker-host.js runs as a worker thread')
  return parentPort
}

const port = hostPort()
const init = workerData as HostInit
const send = (reply: HostReply): void => port.postMessage(reply)

const connections: NatsConnection[] = []
const daemons: WorkerDaemon[] = []
let firstStartedAt: number | null = null
let elu = performance.eventLoopUtilization()
/** Since `arm`: units run, time on the runner, finish times not yet paired with a start, and gaps. */
let timing = { runs: 0, runMs: 0, finishes: [] as number[], gaps: [] as number[] }

/** The daemon's runner, timed: how busy its threads are and how long they wait between units. */
function timedRunner(base: Runner): Runner {
  return {
    threads: base.threads,
    kinds: base.kinds,
    close: () => base.close(),
    async run(task, signal) {
      const t = timing
      const started = now()
      const finished = t.finishes.shift()
      if (finished !== undefined) t.gaps.push(started - finished)
      try {
        return await base.run(task, signal)
      } finally {
        const end = now()
        t.runs++
        t.runMs += end - started
        t.finishes.push(end)
      }
    },
  }
}

async function start(): Promise<void> {
  const trusted = trustedKeysFrom([init.trusted])
  for (const [i, spec] of init.workers.entries()) {
    const identity = await generateIdentity(true)
    const nats = await volunteerConnection(init.natsUrl, init.coordinatorUrl, identity, `bench-worker-${i}`)
    connections.push(nats)
    const daemon = createWorkerDaemon({
      nats,
      identity,
      trusted,
      runner: timedRunner(createPoolRunner({ threads: spec.threads })),
      jobTypes: builtinJobTypes.values(),
      log: benchLogger(`worker-${i}`),
      subjectPrefix: init.subjectPrefix,
      ...(spec.bufferUnits === undefined ? {} : { bufferUnits: spec.bufferUnits }),
    })
    daemon.on('started', () => {
      firstStartedAt ??= now()
    })
    daemon.start()
    daemons.push(daemon)
  }
}

async function stop(): Promise<void> {
  await Promise.allSettled(daemons.map((d) => d.stop()))
  await Promise.allSettled(connections.map((nc) => nc.drain().catch(() => nc.close())))
}

async function handle(req: HostRequest): Promise<void> {
  switch (req.type) {
    case 'arm':
      firstStartedAt = null
      elu = performance.eventLoopUtilization()
      timing = { runs: 0, runMs: 0, finishes: [], gaps: [] }
      send({
        type: 'report',
        firstStartedAt,
        eventLoopUtilization: 0,
        runs: 0,
        runMs: 0,
        medianGapMs: null,
        stats: [],
      })
      return
    case 'report':
      send({
        type: 'report',
        firstStartedAt,
        eventLoopUtilization: performance.eventLoopUtilization(elu).utilization,
        runs: timing.runs,
        runMs: timing.runMs,
        medianGapMs: timing.gaps.length === 0 ? null : median(timing.gaps),
        stats: daemons.map((d) => ({ ...d.stats })),
      })
      return
    case 'stop':
      await stop()
      send({ type: 'stopped' })
      port.close()
      return
  }
}

port.on('message', (req: HostRequest) => {
  handle(req).catch((err: unknown) => send({ type: 'failed', message: String(err) }))
})

start().then(
  () => send({ type: 'ready' }),
  async (err: unknown) => {
    await stop()
    send({ type: 'failed', message: `worker host did not start: ${String(err)}` })
  },
)
