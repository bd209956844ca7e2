// The `cohort` command line: coordinator, worker, submit, status, result, cancel, upload, up.
import { Command, Option } from 'commander'
import { randomBytes } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { CohortError, ConfigError, type Logger, type LogLevel } from '../shared/index.js'
import { apiKeyDigest, type CoordinatorTuning } from '../coordinator/index.js'
import { loadCoordinatorConfig } from './coordinator-config.js'
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
import { printWorkerStatus, waitForExit } from './worker-status.js'
import { claimName } from './worker-claim.js'
import { sendControl, type ControlCommand } from '../worker/policy/index.js'
import { onShutdown, watchParent } from './signals.js'
import { up } from './up.js'

const env: EnvConfig = loadEnvConfig()
const say = (line: string): void => void process.stderr.write(`cohort: ${line}\n`)

function logger(ns: string, file?: string, level?: LogLevel): Logger {
  return createProcessLogger(ns, {
    level: env.logLevelSet ? env.logLevel : (level ?? env.logLevel),
    ...(file === undefined ? {} : { file }),
  })
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
  .option(
    '--config <path>',
    'config file, JSON: every tuning field and process setting (env COHORT_COORDINATOR_CONFIG; flags win)',
  )
  .option('--port <n>', 'HTTP port (default 8080)')
  .option('--host <addr>', 'HTTP bind address (default 127.0.0.1)')
  .option('--log-file <path>', 'write log lines to this file (reopened on SIGHUP)')
  .option('--no-access-log', 'no line per HTTP request')
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
  .option('--lease-ms <n>', 'lease length handed to workers (default 30000)')
  .option('--redis-prefix <p>', 'Redis key prefix, several deployments on one Redis (default cohort:)')
  .option('--subject-prefix <p>', 'NATS subject prefix (default cohort)')
  .option('--api-keys-file <path>', 'API keys, names, roles and quotas, JSON (env COHORT_API_KEYS_FILE)')
  .option('--anonymous', 'let callers without a key use the API, as one owner with small quotas')
  .option('--upload-retention-hours <n>', 'hours an upload is kept after its last use (default 168)')
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
      config?: string
      port?: string
      logFile?: string
      accessLog: boolean
      vouch?: string[]
      host?: string
      apiKeysFile?: string
      anonymous?: boolean
      uploadRetentionHours?: string
      redisUrl?: string
      natsUrl?: string
      natsWsUrl?: string
      natsCreds?: string
      natsAccountSeedFile?: string
      signupPowBits?: string
      signupPerAddress?: string
      keyFile?: string
      leaseMs?: string
      redisPrefix?: string
      subjectPrefix?: string
      trustedProxy?: string[]
      placementExempt?: string[]
    }) => {
      const configPath = o.config ?? env.coordinatorConfig
      const file = configPath === undefined ? undefined : await loadCoordinatorConfig(configPath)
      const fp = file?.process ?? {}
      const log = logger('coordinator', o.logFile ?? fp.logFile, fp.logLevel)
      const exempt = o.placementExempt?.filter((c) => c !== 'none')
      const signupPowBits = intFlag('signup-pow-bits', o.signupPowBits, 0, 32)
      const signupPerAddress = intFlag('signup-per-address', o.signupPerAddress, 1, 1_000_000)
      const leaseMs = intFlag('lease-ms', o.leaseMs, 500, 86_400_000)
      const retentionHours = intFlag('upload-retention-hours', o.uploadRetentionHours, 1, 87_600)
      const vouched = o.vouch?.flatMap((v) => v.split(',')).filter((v) => v !== '')
      // The file, then each flag given over it.
      const flags: Partial<CoordinatorTuning> = {
        ...(leaseMs === undefined ? {} : { leaseMs }),
        ...(o.redisPrefix === undefined ? {} : { redisPrefix: o.redisPrefix }),
        ...(o.subjectPrefix === undefined ? {} : { subjectPrefix: o.subjectPrefix }),
        ...(signupPowBits === undefined ? {} : { signupPowBits }),
        ...(signupPerAddress === undefined ? {} : { signupPerAddress }),
        ...(o.trustedProxy === undefined ? {} : { trustedProxies: o.trustedProxy }),
        ...(exempt === undefined ? {} : { placementExemptNetworks: exempt }),
        ...(o.anonymous === true ? { anonymous: true } : {}),
        ...(o.accessLog === false ? { accessLog: false } : {}),
        ...(vouched === undefined ? {} : { vouchedWorkers: vouched }),
        ...(retentionHours === undefined ? {} : { uploadRetentionMs: retentionHours * 3600_000 }),
      }
      const natsWsUrl = o.natsWsUrl ?? env.natsWsUrl ?? fp.natsWsUrl
      const { coordinator, key } = await startCoordinator({
        redisUrl: o.redisUrl ?? env.redisUrl ?? fp.redisUrl,
        natsUrl: o.natsUrl ?? env.natsUrl ?? fp.natsUrl,
        natsUser: env.natsUser,
        natsPass: env.natsPass,
        natsCredsFile: o.natsCreds ?? env.natsCreds ?? fp.natsCredsFile,
        natsAccountSeedFile: o.natsAccountSeedFile ?? env.natsAccountSeedFile ?? fp.natsAccountSeedFile,
        natsWsUrl,
        port: intFlag('port', o.port, 0, 65535) ?? fp.port ?? 8080,
        host: o.host ?? fp.host ?? '127.0.0.1',
        keyFile: o.keyFile ?? fp.keyFile ?? defaultCoordinatorKeyFile(env.dataDir),
        log,
        apiKeysFile: o.apiKeysFile ?? env.apiKeysFile ?? fp.apiKeysFile,
        tuning: { ...file?.tuning, ...flags },
      })
      const contribute = natsWsUrl === undefined ? '' : `; contribute at ${coordinator.url}/contribute`
      process.stdout.write(`coordinator listening on ${coordinator.url}; key ${key}${contribute}\n`)
      onShutdown(() => coordinator.stop(), say)
    },
  )

const workerCommand = program
  .command('worker')
  .description(
    'run the volunteer worker daemon (`cohort worker status|pause|resume|finish` reach a running one)',
  )
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
  .option(
    '--buffer <n>',
    'units held beyond the running ones (default: half a second of work per thread, at least one)',
  )
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
  .option(
    '--credit-seconds <n>',
    "how often the coordinator's record of this identity's credit is read for the status (default 30)",
  )
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
      creditSeconds?: string
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
      let finishing = false
      let shutdown: (why: string) => void = () => {}
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
        ...(o.creditSeconds === undefined
          ? {}
          : { standingEveryMs: (intFlag('credit-seconds', o.creditSeconds, 1, 86_400) ?? 30) * 1000 }),
        log,
        onFinish() {
          finishing = true
          shutdown('cohort worker finish')
        },
      })
      process.stdout.write(`worker ${w.daemon.id} running\n`)
      shutdown = onShutdown(() => w.stop({ finish: finishing }), say)
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

workerCommand
  .command('claim')
  .description(
    "give this worker's identity a display name and team on the leaderboard (run it with each identity's --key-file)",
  )
  .requiredOption('--name <name>', 'display name: up to 32 letters, digits, spaces, _ . -')
  .option('--team <team>', 'team, same characters (leave it out to leave your team)')
  .action(async (_o: unknown, cmd: Command) => {
    // --key-file and --coordinator are the worker command's own options.
    const o = cmd.optsWithGlobals<{ keyFile?: string; coordinator?: string; name: string; team?: string }>()
    await claimName(
      {
        keyFile: o.keyFile ?? defaultWorkerKeyFile(),
        coordinatorUrl: o.coordinator ?? env.coordinatorUrl,
        name: o.name,
        team: o.team,
      },
      process.stdout,
    )
  })
const controlCommands: [ControlCommand, string][] = [
  ['pause', 'stop starting units: buffered ones go back at once, running ones finish and are submitted'],
  ['resume', 'start units and ask for work again after `cohort worker pause`'],
  ['finish', 'take no more work, finish and submit the running units, then exit (waits for the exit)'],
]
for (const [cmd, description] of controlCommands) {
  const c = workerCommand.command(cmd).description(description)
  if (cmd === 'finish')
    c.option('--no-wait', 'return once the worker started finishing').option(
      '--timeout <minutes>',
      'longest wait for the worker to exit',
      '360',
    )
  c.action(async (_o: unknown, command: Command) => {
    const o = command.optsWithGlobals<{
      stateDir?: string
      keyFile?: string
      wait?: boolean
      timeout?: string
    }>()
    const dir = workerStateDir(o.stateDir, env, o.keyFile ?? defaultWorkerKeyFile())
    const reply = await sendControl(dir, cmd)
    process.stdout.write(`worker (pid ${reply.pid}) ${reply.mode}\n`)
    if (cmd === 'finish' && o.wait !== false) {
      await waitForExit(reply.pid, (intFlag('timeout', o.timeout, 1, 100_000) ?? 360) * 60_000)
      process.stdout.write(`worker (pid ${reply.pid}) exited\n`)
    }
  })
}

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
