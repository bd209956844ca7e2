// Process entry: one coordinator of the scale section's deployment, in a process of its own so its CPU
// time (process.cpuUsage: every thread of it, garbage collection included) is its own and nobody
// else's. Started by scale.ts, which sends its init first; answers `stats` and `stop` over IPC.
import { importIdentity } from '../shared/index.js'
import { BENCH_API_TUNING } from './api-access.js'
import { benchCoordinator } from './cluster.js'
import { BENCH_SIGNUP_TUNING } from './nats-login.js'
import type { CoordinatorReply, CoordinatorRequest } from './scale-protocol.js'

function send(reply: CoordinatorReply): void {
  process.send?.(reply)
}

/** The init arrives as the first message (not in argv: it holds the deployment's secrets). */
function firstMessage(): Promise<CoordinatorRequest> {
  return new Promise((resolve) => process.once('message', (m: CoordinatorRequest) => resolve(m)))
}

async function main(): Promise<void> {
  if (process.send === undefined) throw new Error('scale-coordinator.js runs as a child process with IPC')
  const first = await firstMessage()
  if (first.type !== 'init') throw new Error(`the first message must be init, got ${first.type}`)
  const { init } = first
  const coordinator = benchCoordinator(
    init.endpoints,
    {
      ...BENCH_SIGNUP_TUNING,
      ...BENCH_API_TUNING,
      redisPrefix: init.redisPrefix,
      subjectPrefix: init.subjectPrefix,
    },
    await importIdentity(init.identity),
  )
  await coordinator.start()
  process.on('message', (req: CoordinatorRequest) => {
    if (req.type === 'stats') {
      const cpu = process.cpuUsage()
      const { unitsValidated, resultsAccepted } = coordinator.counters
      send({ type: 'stats', cpuMs: (cpu.user + cpu.system) / 1000, unitsValidated, resultsAccepted })
    } else if (req.type === 'stop') {
      coordinator.stop().then(
        () => {
          send({ type: 'stopped' })
          process.exit(0)
        },
        (err: unknown) => {
          send({ type: 'failed', message: `stop: ${String(err)}` })
          process.exit(1)
        },
      )
    }
  })
  // The parent going away ends this process too.
  process.on('disconnect', () => process.exit(0))
  send({ type: 'started', url: coordinator.url })
}

main().catch((err: unknown) => {
  send({ type: 'failed', message: String(err) })
  process.exit(1)
})
