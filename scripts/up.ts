// `cohort up`: a whole local cluster in one command — Redis, NATS, a coordinator and N worker
// daemons (separate processes, as volunteers' machines would be) — optionally running the demo.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { once } from 'node:events'
import type { Logger } from '../shared/index.js'
import { createApiClient } from './api-client.js'
import { watchJob } from './progress.js'
import { defaultCoordinatorKeyFile, startCoordinator } from './run-coordinator.js'
import { startServices, type Services } from './services.js'

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

/** The demo job: π(10^9), a published value anyone can check. */
export const DEMO_JOB = { type: 'primes', params: { to: 1_000_000_000 }, redundancy: { quorum: 2 } }
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
  })
  const threads = o.threads ?? Math.max(1, Math.floor(availableParallelism() / o.workers))
  const policyFile = join(dataDir, 'workers', 'policy.json')
  mkdirSync(dirname(policyFile), { recursive: true })
  writeFileSync(
    policyFile,
    JSON.stringify({ run: 'always', battery: { runOnBattery: true } }, null, 2) + '\n',
  )
  const children: ChildProcess[] = []
  for (let i = 0; i < o.workers; i++) {
    const child = spawn(
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
        join(dataDir, 'workers', `worker-${i}.json`),
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
      { stdio: ['ignore', 'ignore', 'inherit'] },
    )
    children.push(child)
  }
  const contribute =
    services.natsWsUrl === undefined
      ? 'no contribute page (no NATS WebSocket URL)'
      : `contribute at ${coordinator.url}/contribute`
  o.out.write(
    `cohort up: ready — API ${coordinator.url}, ${contribute}, ${o.workers} worker daemons × ${threads} threads, ` +
      `Redis ${services.redisUrl}, NATS ${services.natsUrl}, logs in ${logDir}\n`,
  )

  const stop = async (): Promise<void> => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM')
    await Promise.all(
      children.map(async (c) => {
        if (c.exitCode !== null) return
        const timer = setTimeout(() => c.kill('SIGKILL'), 40_000)
        await once(c, 'exit')
        clearTimeout(timer)
      }),
    )
    await coordinator.stop()
    await services.stop()
  }

  const demo = async (): Promise<void> => {
    const api = createApiClient(coordinator.url)
    o.out.write(`demo: counting the primes below 10^9 (${JSON.stringify(DEMO_JOB)})\n`)
    const started = Date.now()
    const job = await api.submit(DEMO_JOB)
    const final = await watchJob(api, job.id, o.out)
    if (final.state === 'completed') {
      const { result } = await api.result(job.id)
      const count = (result as { count?: number }).count
      const ok = count === DEMO_ANSWER
      o.out.write(
        `demo: π(10^9) = ${count} in ${((Date.now() - started) / 1000).toFixed(1)} s, every unit agreed by 2 distinct workers — ` +
          (ok
            ? 'matches the published value 50,847,534\n'
            : `DOES NOT match the published value ${DEMO_ANSWER}\n`),
      )
    } else {
      o.out.write(`demo: job ended ${final.state}${final.error === undefined ? '' : `: ${final.error}`}\n`)
    }
    o.out.write(
      `cluster still running at ${coordinator.url} — try \`cohort submit nqueens --param n=12 --watch\`; Ctrl-C stops it\n`,
    )
  }
  return { stop, demo }
}
