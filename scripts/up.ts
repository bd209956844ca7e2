// `cohort up`: a whole local cluster in one command — Redis, NATS, a coordinator and N worker
// daemons (separate processes, as volunteers' machines would be) — optionally running the demo.
import { spawn } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { SUBMITTER_QUOTA } from '../coordinator/index.js'
import type { Logger } from '../shared/index.js'
import { connect } from '../client/index.js'
import { watchJob } from './progress.js'
import { defaultCoordinatorKeyFile, startCoordinator } from './run-coordinator.js'
import { startServices, type Services } from './services.js'
import { supervise, type Supervisor } from './supervisor.js'
import { loadOrCreateIdentity } from '../worker/index.js'

/** `cohort up` stops everything it started within this bound on SIGINT/SIGTERM. */
export const STOP_BOUND_MS = 15_000

/** Resolves true when `p` settles within `ms`, false otherwise (a rejection counts as settled). */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)))
  const settled = p.then(
    () => true as const,
    () => true as const,
  )
  const result = await Promise.race([settled, timeout])
  clearTimeout(timer)
  return result
}

export interface UpOptions {
  port: number
  workers: number
  threads: number | undefined
  dataDir: string
  redisUrl: string | undefined
  natsUrl: string | undefined
  /** Coordinator credentials for an external NATS. */
  natsUser?: string | undefined
  natsPass?: string | undefined
  natsCredsFile?: string | undefined
  /** With an external NATS in operator mode: the account seed, so workers can sign up. */
  natsAccountSeedFile?: string | undefined
  /** With an external NATS: its WebSocket listener, for the contribute page. */
  natsWsUrl: string | undefined
  log: Logger
  out: NodeJS.WriteStream
}

const CLI = fileURLToPath(new URL('../../bin/cohort.js', import.meta.url))

/**
 * The demo job: π(10^9), a published value anyone can check. Every unit is cross-checked
 * (`spotCheckRate` 1), even once the daemons have earned units alone, as the demo says.
 */
export const DEMO_JOB = {
  type: 'primes' as const,
  params: { to: 1_000_000_000 },
  redundancy: { quorum: 2, spotCheckRate: 1 },
}
export const DEMO_ANSWER = 50_847_534

export interface Cluster {
  stop(): Promise<void>
  /** Run the demo job to its validated result, showing progress. */
  demo(): Promise<void>
}

export async function up(o: UpOptions): Promise<Cluster> {
  const dataDir = resolve(o.dataDir)
  const logDir = join(dataDir, 'logs')
  mkdirSync(logDir, { recursive: true })
  const services: Services = await startServices({
    dataDir,
    ...(o.redisUrl === undefined ? {} : { redisUrl: o.redisUrl }),
    ...(o.natsUrl === undefined ? {} : { natsUrl: o.natsUrl }),
    ...(o.natsWsUrl === undefined ? {} : { natsWsUrl: o.natsWsUrl }),
    log: (line) => o.log.info(line),
  })
  // The private nats-server's files, or the operator's for an external NATS.
  const natsFiles = services.natsFiles ?? { creds: o.natsCredsFile, accountSeed: o.natsAccountSeedFile }
  const { coordinator, key, signup } = await startCoordinator({
    redisUrl: services.redisUrl,
    natsUrl: services.natsUrl,
    ...(services.natsFiles === undefined ? { natsUser: o.natsUser, natsPass: o.natsPass } : {}),
    natsCredsFile: natsFiles.creds,
    natsAccountSeedFile: natsFiles.accountSeed,
    natsWsUrl: services.natsWsUrl,
    port: o.port,
    host: '127.0.0.1',
    keyFile: defaultCoordinatorKeyFile(dataDir),
    log: o.log.child('coordinator'),
    // A cluster for this machine's user, on 127.0.0.1: `cohort submit` and the demo need no key.
    tuning: { anonymous: true, anonymousQuota: { ...SUBMITTER_QUOTA, maxPriority: 100 } },
  })
  const threads = o.threads ?? Math.max(1, Math.floor(availableParallelism() / o.workers))
  const policyFile = join(dataDir, 'workers', 'policy.json')
  mkdirSync(dirname(policyFile), { recursive: true })
  writeFileSync(
    policyFile,
    JSON.stringify({ run: 'always', battery: { runOnBattery: true } }, null, 2) + '\n',
  )
  const workers: Supervisor[] = []
  for (let i = 0; i < o.workers; i++) {
    const keyFile = join(dataDir, 'workers', `worker-${i}.json`)
    // Created here, so the console can name each worker and a restarted one keeps its identity.
    const { identity } = await loadOrCreateIdentity(keyFile)
    // The operator's own hosts: vouched for, so their results anchor units from the first one.
    await coordinator.store.vouch([identity.id])
    const name = `worker ${i} (${identity.id.slice(0, 8)})`
    const w = supervise({
      name,
      say: (line) => o.out.write(`cohort up: ${line}\n`),
      spawn: () =>
        spawn(
          process.execPath,
          [
            CLI,
            'worker',
            '--nats-url',
            services.natsUrl,
            '--trust',
            key,
            // Each worker signs up with the coordinator for NATS credentials of its own.
            ...(signup ? ['--coordinator', coordinator.url] : []),
            '--key-file',
            keyFile,
            '--threads',
            String(threads),
            '--log-file',
            join(logDir, `worker-${i}.log`),
            '--state-dir',
            join(dataDir, 'workers', `state-${i}`),
            // A local cluster computes whenever it runs: not the volunteer's own ~/.cohort/worker.json.
            '--config',
            policyFile,
          ],
          // A process group of its own: a terminal's Ctrl-C reaches `cohort up` alone, which stops
          // each worker once, in order (workers hand their leases back while the coordinator and the
          // servers still run); a worker whose `cohort up` dies stops by itself (COHORT_PARENT_PID).
          {
            stdio: ['ignore', 'ignore', 'inherit'],
            detached: true,
            env: { ...process.env, COHORT_PARENT_PID: String(process.pid) },
          },
        ),
    })
    o.out.write(`cohort up: ${name} started, pid ${w.pid ?? '?'}\n`)
    void (async () => {
      for (;;) {
        const pid = await w.nextStart()
        o.out.write(`cohort up: ${name} restarted with the same identity, pid ${pid}\n`)
      }
    })()
    workers.push(w)
  }
  const contribute =
    services.natsWsUrl === undefined
      ? 'no contribute page (no NATS WebSocket URL)'
      : `contribute at ${coordinator.url}/contribute`
  o.out.write(
    `cohort up: ready — API ${coordinator.url}, ${contribute}, ${o.workers} worker daemons × ${threads} threads, ` +
      `Redis ${services.redisUrl}, NATS ${services.natsUrl}, logs in ${logDir}\n`,
  )

  // Everything stops within STOP_BOUND_MS, whatever state the children are in: workers get most of
  // it to hand their leases back, then the coordinator, then the servers; whatever is left is killed.
  const stop = async (): Promise<void> => {
    const deadline = Date.now() + STOP_BOUND_MS
    const left = (reserveMs: number) => Math.max(0, deadline - reserveMs - Date.now())
    await Promise.all(workers.map((w) => w.stop(left(7_000))))
    const coordinatorStopped = await within(coordinator.stop(), left(4_000))
    if (!coordinatorStopped) o.log.warn('coordinator did not stop in time; leaving it to process exit')
    const servicesStopped = await within(services.stop(), left(500))
    if (!servicesStopped) {
      for (const pid of [services.pids.redis, services.pids.nats]) {
        if (pid === undefined) continue
        try {
          process.kill(pid, 'SIGKILL')
        } catch {
          // already gone
        }
      }
    }
  }

  const demo = async (): Promise<void> => {
    const api = connect({ url: coordinator.url })
    o.out.write(`demo: counting the primes below 10^9 (${JSON.stringify(DEMO_JOB)})\n`)
    const started = Date.now()
    const job = await api.submit(DEMO_JOB)
    const final = await watchJob(job, o.out)
    if (final === 'completed') {
      const { count } = await job.result()
      const ok = count === DEMO_ANSWER
      o.out.write(
        `demo: π(10^9) = ${count} in ${((Date.now() - started) / 1000).toFixed(1)} s, every unit agreed by 2 distinct workers — ` +
          (ok
            ? 'matches the published value 50,847,534\n'
            : `DOES NOT match the published value ${DEMO_ANSWER}\n`),
      )
    } else {
      o.out.write(`demo: job ended ${final ?? 'unknown'}${job.error === undefined ? '' : `: ${job.error}`}\n`)
    }
    o.out.write(
      `cluster still running at ${coordinator.url} — try \`cohort submit nqueens --param n=12 --watch\`; Ctrl-C stops it\n`,
    )
  }
  return { stop, demo }
}
