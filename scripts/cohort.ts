// The `cohort` command line: coordinator, worker, submit, status, result, cancel, upload, up.
import { Command, Option } from 'commander'
import { randomBytes } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { CohortError, ConfigError, type Logger } from '../shared/index.js'
import { apiKeyDigest } from '../coordinator/index.js'
import { connect, type Client } from '../client/index.js'
import { fileBody, uploadLine } from './file-body.js'
import { intFlag, loadEnvConfig, type EnvConfig } from './config.js'
import { createProcessLogger } from './log-sink.js'
import { writeNatsSetup } from './nats-setup.js'
import { watchJob } from './progress.js'
import { defaultCoordinatorKeyFile, startCoordinator } from './run-coordinator.js'
import { defaultOwnerKeyFile, defaultWorkerKeyFile, startWorker } from './run-worker.js'
import { loadOrCreateIdentity } from '../worker/index.js'
import { loadWorkerPolicy, workerStateDir } from './worker-config.js'
import { printWorkerStatus } from './worker-status.js'
import { onShutdown, watchParent } from './signals.js'
import { up } from './up.js'

const env: EnvConfig = loadEnvConfig()
const say = (line: string): void => void process.stderr.write(`cohort: ${line}\n`)

function logger(ns: string, file?: string): Logger {
  return createProcessLogger(ns, { level: env.logLevel, ...(file === undefined ? {} : { file }) })
}

function api(opts: { url?: string; apiKey?: string }): Client {
  const apiKey = opts.apiKey ?? env.apiKey
  return connect({ url: opts.url ?? env.apiUrl, ...(apiKey === undefined ? {} : { apiKey }) })
}

/** `--param to=1000000` pairs: numbers when they look like numbers, else strings. */
function parseParams(pairs: string[], json: string | undefined): Record<string, unknown> {
  let params: Record<string, unknown> = {}
  if (json !== undefined) {
    try {
      params = JSON.parse(json) as Record<string, unknown>
    } catch {
      throw new ConfigError('--params must be a JSON object, e.g. --params \'{"to":1000000}\'')
    }
  }
  for (const pair of pairs) {
    const i = pair.indexOf('=')
    if (i <= 0) throw new ConfigError(`--param must look like name=value, got "${pair}"`)
    const v = pair.slice(i + 1)
    params[pair.slice(0, i)] = v !== '' && Number.isFinite(Number(v)) ? Number(v) : v
  }
  return params
}

const program = new Command('cohort').description(
  'Cohort: volunteer computing with signed units and quorum-validated results',
)
const urlOption = new Option('--url <url>', 'coordinator API (env COHORT_URL)')
const keyOption = new Option(
  '--api-key <key>',
  'API key sent as "Authorization: Bearer" (env COHORT_API_KEY)',
)

program
  .command('coordinator')
  .description('run a coordinator (HTTP API, scheduler, validator) against Redis and NATS')
  .option('--port <n>', 'HTTP port', '8080')
  .option('--host <addr>', 'HTTP bind address', '127.0.0.1')
  .option('--redis-url <url>', 'Redis (env REDIS_URL)')
  .option('--nats-url <urls>', 'NATS: one URL or several, comma-separated (env NATS_URL)')
  .option('--nats-ws-url <url>', 'NATS WebSocket listener for browsers; serves /contribute (env NATS_WS_URL)')
  .option('--nats-creds <file>', 'NATS .creds file to log in with (env NATS_CREDS)')
  .option(
    '--nats-account-seed-file <file>',
    "NATS account seed: issue volunteers' credentials at POST /v1/volunteers (env COHORT_NATS_ACCOUNT_SEED_FILE)",
  )
  .option('--signup-pow-bits <n>', 'proof of work asked at volunteer sign-up, in bits (default 21)')
  .option('--signup-per-address <n>', 'volunteer sign-ups per source address per hour (default 30)')
  .option('--key-file <path>', 'signing key file (created when missing)')
  .option('--lease-ms <n>', 'lease length handed to workers', '30000')
  .option('--redis-prefix <p>', 'Redis key prefix (several deployments on one Redis)', 'cohort:')
  .option('--subject-prefix <p>', 'NATS subject prefix', 'cohort')
  .option('--api-keys-file <path>', 'API keys, names, roles and quotas, JSON (env COHORT_API_KEYS_FILE)')
  .option('--anonymous', 'let callers without a key use the API, as one owner with small quotas')
  .option('--upload-retention-hours <n>', 'hours an upload is kept after its last use', '168')
  .option(
    '--vouch <peer-id...>',
    "the operator's own worker hosts (peer ids), trusted to anchor results (see docs/security.md)",
  )
  .option(
    '--trusted-proxy <cidr...>',
    'reverse proxies whose X-Forwarded-For names the client at sign-up (default: none)',
  )
  .option(
    '--placement-exempt <cidr...>',
    'networks without a placement network ("none" for no exemption; default loopback, RFC 1918, fc00::/7)',
  )
  .action(
    async (o: {
      port: string
      vouch?: string[]
      host: string
      apiKeysFile?: string
      anonymous?: boolean
      uploadRetentionHours: string
      redisUrl?: string
      natsUrl?: string
      natsWsUrl?: string
      natsCreds?: string
      natsAccountSeedFile?: string
      signupPowBits?: string
      signupPerAddress?: string
      keyFile?: string
      leaseMs: string
      redisPrefix: string
      subjectPrefix: string
      trustedProxy?: string[]
      placementExempt?: string[]
    }) => {
      const log = logger('coordinator')
      const exempt = o.placementExempt?.filter((c) => c !== 'none')
      const signupPowBits = intFlag('signup-pow-bits', o.signupPowBits, 0, 32)
      const signupPerAddress = intFlag('signup-per-address', o.signupPerAddress, 1, 1_000_000)
      const { coordinator, key } = await startCoordinator({
        redisUrl: o.redisUrl ?? env.redisUrl,
        natsUrl: o.natsUrl ?? env.natsUrl,
        natsUser: env.natsUser,
        natsPass: env.natsPass,
        natsCredsFile: o.natsCreds ?? env.natsCreds,
        natsAccountSeedFile: o.natsAccountSeedFile ?? env.natsAccountSeedFile,
        natsWsUrl: o.natsWsUrl ?? env.natsWsUrl,
        port: intFlag('port', o.port, 0, 65535) ?? 8080,
        host: o.host,
        keyFile: o.keyFile ?? defaultCoordinatorKeyFile(env.dataDir),
        log,
        apiKeysFile: o.apiKeysFile ?? env.apiKeysFile,
        tuning: {
          leaseMs: intFlag('lease-ms', o.leaseMs, 500, 86_400_000) ?? 30_000,
          redisPrefix: o.redisPrefix,
          subjectPrefix: o.subjectPrefix,
          ...(signupPowBits === undefined ? {} : { signupPowBits }),
          ...(signupPerAddress === undefined ? {} : { signupPerAddress }),
          ...(o.trustedProxy === undefined ? {} : { trustedProxies: o.trustedProxy }),
          ...(exempt === undefined ? {} : { placementExemptNetworks: exempt }),
          anonymous: o.anonymous === true,
          vouchedWorkers: (o.vouch ?? []).flatMap((v) => v.split(',')).filter((v) => v !== ''),
          uploadRetentionMs:
            (intFlag('upload-retention-hours', o.uploadRetentionHours, 1, 87_600) ?? 168) * 3600_000,
        },
      })
      const natsWsUrl = o.natsWsUrl ?? env.natsWsUrl
      const contribute = natsWsUrl === undefined ? '' : `; contribute at ${coordinator.url}/contribute`
      process.stdout.write(`coordinator listening on ${coordinator.url}; key ${key}${contribute}\n`)
      onShutdown(() => coordinator.stop(), say)
    },
  )

const workerCommand = program
  .command('worker')
  .description('run the volunteer worker daemon (`cohort worker status` shows a running one)')
  .option('--nats-url <urls>', 'NATS: one URL or several, comma-separated (env NATS_URL)')
  .option(
    '--coordinator <url>',
    "coordinator HTTP API to sign up with for this worker's NATS credentials (env COHORT_COORDINATOR_URL)",
  )
  .option('--trust <key...>', 'coordinator public keys to trust (env COHORT_TRUST)')
  .option('--key-file <path>', 'identity key file (created when missing)')
  .option(
    '--owner-key-file <path>',
    'owner key linking this identity to your other machines (`cohort owner-key`; env COHORT_OWNER_KEY_FILE)',
  )
  .option('--threads <n>', 'compute threads (default: all cores)')
  .option('--buffer <n>', 'units held beyond the running ones (default: threads)')
  .option('--log-file <path>', 'append log lines to this file')
  .option('--subject-prefix <p>', 'NATS subject prefix', 'cohort')
  .option(
    '--config <path>',
    'policy file, JSON (env COHORT_WORKER_CONFIG; default ~/.cohort/worker.json if present)',
  )
  .option('--state-dir <path>', 'checkpoints and status.json (env COHORT_WORKER_STATE_DIR)')
  .option('--run <when>', 'always | idle (env COHORT_WORKER_RUN)')
  .option('--duty-cycle <pct>', 'percent of the time each thread computes (env COHORT_WORKER_DUTY_CYCLE)')
  .option('--idle-minutes <n>', 'minutes without user input before the machine counts as idle')
  .option('--other-cpu <pct>', "pause when other programs' CPU use exceeds this percent")
  .option('--buffer-minutes <n>', 'work held, in minutes of compute per thread')
  .option('--unit-mb <n>', 'heap limit per unit thread, MiB')
  .option('--window <HH:MM-HH:MM...>', 'daily windows to compute in (local time)')
  .option('--run-on-battery', 'compute on battery power too')
  .option('--no-peers', 'do not exchange units or content with other workers')
  .option('--peer-cache-mb <n>', 'content kept and served to peers, MiB (default 1024)')
  .action(
    async (o: {
      natsUrl?: string
      coordinator?: string
      trust?: string[]
      keyFile?: string
      ownerKeyFile?: string
      threads?: string
      buffer?: string
      logFile?: string
      subjectPrefix: string
      config?: string
      stateDir?: string
      run?: string
      dutyCycle?: string
      idleMinutes?: string
      otherCpu?: string
      bufferMinutes?: string
      unitMb?: string
      window?: string[]
      runOnBattery?: boolean
      peers?: boolean
      peerCacheMb?: string
    }) => {
      const log = logger('worker', o.logFile)
      // Started by `cohort up` in a process group of its own: stop if it dies (handing leases back
      // once running; before that, while signing up or connecting, there is nothing to hand back).
      let onParentGone = (): void => process.exit(0)
      const parent = Number(process.env['COHORT_PARENT_PID'] ?? '')
      if (Number.isInteger(parent) && parent > 1) watchParent(parent, () => onParentGone())
      const keyFile = o.keyFile ?? defaultWorkerKeyFile()
      const { policy, stateDir } = await loadWorkerPolicy(
        { ...o, keyFile, threads: intFlag('threads', o.threads, 1, 1024) },
        env,
      )
      const w = await startWorker({
        policy,
        stateDir,
        natsUrl: o.natsUrl ?? env.natsUrl,
        natsUser: env.natsUser,
        natsPass: env.natsPass,
        coordinatorUrl: o.coordinator ?? env.coordinatorUrl,
        keyFile,
        ownerKeyFile: o.ownerKeyFile ?? env.ownerKeyFile,
        trust: o.trust ?? env.trust,
        threads: intFlag('threads', o.threads, 1, 1024),
        bufferUnits: intFlag('buffer', o.buffer, 0, 1024),
        subjectPrefix: o.subjectPrefix,
        log,
      })
      process.stdout.write(`worker ${w.daemon.id} running\n`)
      const shutdown = onShutdown(() => w.stop(), say)
      onParentGone = () => shutdown('cohort up is gone')
    },
  )

workerCommand
  .command('status')
  .description("show a running worker's state, threads, units and credit")
  .option('--json', 'print the status file as JSON')
  .action(async (_o: unknown, cmd: Command) => {
    // --state-dir and --key-file are the worker command's own options.
    const o = cmd.optsWithGlobals<{ stateDir?: string; keyFile?: string; json?: boolean }>()
    const dir = workerStateDir(o.stateDir, env, o.keyFile ?? defaultWorkerKeyFile())
    await printWorkerStatus(dir, o.json === true, process.stdout)
  })

program
  .command('owner-key')
  .description(
    'create (or show) an owner key: give it to `cohort worker --owner-key-file` on each of your machines',
  )
  .option('--file <path>', 'owner key file (created when missing)', defaultOwnerKeyFile())
  .action(async (o: { file: string }) => {
    const { identity, created } = await loadOrCreateIdentity(o.file)
    process.stdout.write(`${created ? 'created' : 'existing'} owner key ${o.file}: owner ${identity.id}\n`)
  })

program
  .command('submit')
  .description('submit a job, e.g. `cohort submit primes --param to=100000000 --watch`')
  .argument('<type>', 'job type (see `cohort types`)')
  .option('--param <name=value...>', 'a job parameter', [])
  .option('--params <json>', 'all parameters as a JSON object')
  .option('--quorum <n>', 'agreeing results from distinct workers needed per unit')
  .option('--max-replicas <n>', 'most replicas per unit before it fails')
  .option('--priority <n>', '-100..100, higher first')
  .option('--watch', 'show progress until the job ends, then print the result')
  .addOption(urlOption)
  .addOption(keyOption)
  .action(
    async (
      type: string,
      o: {
        param: string[]
        params?: string
        quorum?: string
        maxReplicas?: string
        priority?: string
        watch?: boolean
        url?: string
        apiKey?: string
      },
    ) => {
      const client = api(o)
      const redundancy: Record<string, number> = {}
      const quorum = intFlag('quorum', o.quorum, 1, 10)
      const maxReplicas = intFlag('max-replicas', o.maxReplicas, 1, 30)
      if (quorum !== undefined) redundancy['quorum'] = quorum
      if (maxReplicas !== undefined) redundancy['maxReplicas'] = maxReplicas
      const priority = intFlag('priority', o.priority, -100, 100)
      const job = await client.submit({
        type,
        params: parseParams(o.param, o.params),
        ...(Object.keys(redundancy).length > 0 ? { redundancy } : {}),
        ...(priority === undefined ? {} : { priority }),
      })
      process.stdout.write(`${job.id}\n`)
      if (o.watch === true) {
        const final = await watchJob(job, process.stderr)
        if (final !== 'completed')
          throw new CohortError(`job ${final ?? 'unknown'}${job.error === undefined ? '' : `: ${job.error}`}`)
        process.stdout.write(JSON.stringify(await job.result()) + '\n')
      }
    },
  )

program
  .command('status')
  .description('show a job')
  .argument('<id>')
  .addOption(urlOption)
  .addOption(keyOption)
  .action(async (id: string, o: { url?: string; apiKey?: string }) => {
    process.stdout.write(JSON.stringify(await api(o).job(id), null, 2) + '\n')
  })

program
  .command('result')
  .description("print a completed job's validated result")
  .argument('<id>')
  .addOption(urlOption)
  .addOption(keyOption)
  .action(async (id: string, o: { url?: string; apiKey?: string }) => {
    process.stdout.write(JSON.stringify((await api(o).result(id)).result) + '\n')
  })

program
  .command('cancel')
  .description('cancel a queued or running job')
  .argument('<id>')
  .addOption(urlOption)
  .addOption(keyOption)
  .action(async (id: string, o: { url?: string; apiKey?: string }) => {
    process.stdout.write(JSON.stringify(await api(o).cancel(id), null, 2) + '\n')
  })

program
  .command('jobs')
  .description("list your most recent jobs (an admin key: everyone's)")
  .option('--json', 'print them as JSON')
  .addOption(urlOption)
  .addOption(keyOption)
  .action(async (o: { json?: boolean; url?: string; apiKey?: string }) => {
    const jobs = await api(o).jobs()
    if (o.json === true) process.stdout.write(JSON.stringify(jobs, null, 2) + '\n')
    else
      for (const j of jobs)
        process.stdout.write(
          `${j.id}  ${j.type}@${j.version}  ${j.state}  ${j.units.validated}/${j.units.total} units  ${j.createdAt}\n`,
        )
  })

program
  .command('types')
  .description('list the job types the coordinator knows')
  .addOption(urlOption)
  .addOption(keyOption)
  .action(async (o: { url?: string; apiKey?: string }) => {
    for (const t of await api(o).jobTypes())
      process.stdout.write(`${t.name}@${t.version}  ${t.description}\n`)
  })

program
  .command('upload')
  .description('upload a file as a dataset (content-addressed chunks); prints its root, size and chunks')
  .argument('<file>')
  .option('--json', 'print the answer as JSON')
  .addOption(urlOption)
  .addOption(keyOption)
  .action(async (file: string, o: { json?: boolean; url?: string; apiKey?: string }) => {
    const body = await fileBody(file)
    const tty = process.stderr.isTTY
    const d = await api(o).uploadDataset(body.stream, {
      size: body.size,
      ...(tty
        ? { onProgress: (sent: number) => void process.stderr.write(`\r${uploadLine(sent, body.size)}`) }
        : {}),
    })
    if (tty) process.stderr.write('\n')
    process.stdout.write(
      o.json === true
        ? `${JSON.stringify(d)}\n`
        : `${d.root}  ${d.size} bytes  ${d.chunks} chunks of ${d.chunkSize} bytes\n`,
    )
  })

program
  .command('nats-setup')
  .description(
    "write a NATS trust chain for an external nats-server: its config include, the coordinators' creds and the account seed",
  )
  .requiredOption('--out <dir>', 'directory for the files (created; existing files are never overwritten)')
  .action(async (o: { out: string }) => {
    const f = await writeNatsSetup(o.out)
    process.stdout.write(
      [
        `nats-server:  include ${f.serverConfig} in its configuration (no other authorization block)`,
        `coordinators: NATS_CREDS=${f.coordinatorCreds} COHORT_NATS_ACCOUNT_SEED_FILE=${f.accountSeed}`,
        `keep offline: ${f.operatorSeed}`,
      ].join('\n') + '\n',
    )
  })

program
  .command('api-key')
  .description(
    'make a new API key: prints the key, and its entry for the keys file (which holds only its SHA-256)',
  )
  .requiredOption('--name <name>', 'owner name of what the key creates')
  .option('--role <role>', 'submitter | admin', 'submitter')
  .action((o: { name: string; role: string }) => {
    const key = randomBytes(32).toString('base64url')
    const entry = { name: o.name, role: o.role, sha256: apiKeyDigest(key) }
    process.stdout.write(`key: ${key}\nentry: ${JSON.stringify(entry)}\n`)
  })

program
  .command('up')
  .description('start Redis, NATS, a coordinator and worker daemons on this machine; runs until interrupted')
  .option('--port <n>', 'HTTP port of the coordinator', '8080')
  .option('--workers <n>', 'worker daemons', '2')
  .option('--threads <n>', 'threads per worker (default: cores / workers)')
  .option('--data-dir <path>', 'where servers keep data and logs (env COHORT_DATA_DIR)')
  .option('--demo', 'run the demo job (π(10^9), quorum 2) and show its progress')
  .action(
    async (o: { port: string; workers: string; threads?: string; dataDir?: string; demo?: boolean }) => {
      const dataDir = o.dataDir ?? env.dataDir
      mkdirSync(`${dataDir}/logs`, { recursive: true })
      const cluster = await up({
        port: intFlag('port', o.port, 0, 65535) ?? 8080,
        workers: intFlag('workers', o.workers, 0, 64) ?? 2,
        threads: intFlag('threads', o.threads, 1, 1024),
        dataDir,
        redisUrl: env.redisUrl,
        natsUrl: env.natsUrl,
        natsUser: env.natsUser,
        natsPass: env.natsPass,
        natsCredsFile: env.natsCreds,
        natsAccountSeedFile: env.natsAccountSeedFile,
        natsWsUrl: env.natsWsUrl,
        log: logger('up', `${dataDir}/logs/coordinator.log`),
        out: process.stdout,
      })
      onShutdown(() => cluster.stop(), say)
      if (o.demo === true) await cluster.demo()
    },
  )

program.parseAsync(process.argv).catch((err: unknown) => {
  say(err instanceof Error ? err.message : String(err))
  process.exit(err instanceof ConfigError ? 2 : 1)
})
