// `npm run bench`: private Redis and NATS (or REDIS_URL / NATS_URL), then the overhead, throughput,
// lease latency, end-to-end, peer-to-peer content, hoarding, browser, sign-up, integrity and scale benchmarks; prints markdown
// tables on stdout, ending with the goals next to this run's figures, and writes bench/results/latest.json.
//   node dist/bench/run.js [--only SECTION[,SECTION...]] [--quick] [--threads N] [--integrity-units N]
//     [--scale-overlay-only]  (the scale section measures only the peer overlay's discovery traffic)
// (sections: SECTIONS below; e.g. --only overhead,throughput,latency,e2e gives every goal's figure)
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { servicesOptionsFromEnv, startServices, type Services } from '../scripts/services.js'
import { onShutdown } from '../scripts/signals.js'
import type { Endpoints } from './cluster.js'
import { progress } from './log.js'
import { browserBenchOptions, browserTables, runBrowserBench, type BrowserBenchResult } from './browser.js'
import {
  backgroundLoad,
  loadAverage,
  machineInfo,
  startCpuAccount,
  type CpuShares,
  type MachineInfo,
} from './machine.js'
import { runOverhead, type OverheadResult, type UnitClass } from './overhead.js'
import { runHoarding, type HoardingResult } from './hoarding.js'
import { integrityOptions, runIntegrity, type IntegrityResult } from './integrity.js'
import { integrityTable } from './integrity-report.js'
import { runP2p, type P2pResult } from './p2p.js'
import { runE2e, type E2eRow } from './e2e.js'
import { e2eTable, latencyTable } from './e2e-report.js'
import { goalsTable } from './goals.js'
import { runLeaseLatency, type LeaseLatencyResult } from './lease-latency.js'
import { cpuLine, hoardingTable, overheadTable, p2pTable, throughputTable } from './report.js'
import { runScale, scaleLines, type ScaleResult } from './scale.js'
import { runSignup, signupTable, type SignupResult } from './signup.js'
import { runThroughput, type ThroughputResult } from './throughput.js'

const SECTIONS = [
  'overhead',
  'throughput',
  'latency',
  'e2e',
  'p2p',
  'hoarding',
  'browser',
  'signup',
  'integrity',
  'scale',
] as const
const USAGE =
  'usage: node dist/bench/run.js [--only SECTION[,SECTION...]] [--quick] [--threads N] [--integrity-units N]\n' +
  '       [--scale-overlay-only]\n' +
  '       [--scale-volunteers N[,N...]] (crowd sizes of the scale section; default 10,100,1000)\n' +
  `sections: ${SECTIONS.join(', ')}`

interface Plan {
  overhead: boolean
  throughput: boolean
  /** Work request -> verified unit, with the coordinator idle and busy (bench/lease-latency.ts). */
  latency: boolean
  /** nqueens n=14 and primes to=10^9 at default params, quorum 2, vs. their units twice on a pool (bench/e2e.ts). */
  e2e: boolean
  /** One input shared by 8 peers: coordinator egress and spread time, client-server vs. p2p. */
  p2p: boolean
  /** One job with 0 and with 20 hoarding identities (bench/hoarding.ts). */
  hoarding: boolean
  /** Browser vs. daemon on the same units (bench/browser.ts). */
  browser: boolean
  /** What a volunteer identity costs: sign-up with the default proof of work (bench/signup.ts). */
  signup: boolean
  /** Wrong results accepted when some volunteers cheat, and what checking costs (bench/integrity.ts). */
  integrity: boolean
  /** Coordinator cost per unit with 10 to 1,000 simulated volunteers, two coordinators, overlay discovery (bench/scale.ts). */
  scale: boolean
  quick: boolean
  /** Crowd sizes of the scale section (the last one is also run against two coordinators). */
  scaleVolunteers: number[]
  threads: number
  /** Units per integrity scenario instead of the section's default (more units, a tighter bound). */
  integrityUnits: number | undefined
  /** The scale section measures only the overlay's discovery traffic. */
  scaleOverlayOnly: boolean
}

function parsePlan(argv: string[]): Plan {
  const { values } = parseArgs({
    args: argv,
    options: {
      only: { type: 'string' },
      quick: { type: 'boolean', default: false },
      threads: { type: 'string' },
      'integrity-units': { type: 'string' },
      'scale-overlay-only': { type: 'boolean', default: false },
      'scale-volunteers': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  })
  if (values.help) {
    console.log(USAGE)
    process.exit(0)
  }
  // Sections to run: all, or those listed (comma-separated).
  const only = values.only?.split(',').map((x) => x.trim())
  const unknown = only?.find((x) => !(SECTIONS as readonly string[]).includes(x))
  if (unknown !== undefined) {
    throw new Error(`--only takes sections among ${SECTIONS.join(', ')}, got "${unknown}"\n${USAGE}`)
  }
  const runs = (section: (typeof SECTIONS)[number]): boolean => only === undefined || only.includes(section)
  const threads = values.threads === undefined ? availableParallelism() : Number(values.threads)
  if (!Number.isSafeInteger(threads) || threads < 1 || threads > 64) {
    throw new Error(`--threads must be an integer from 1 to 64\n${USAGE}`)
  }
  const units = values['integrity-units']
  const integrityUnits = units === undefined ? undefined : Number(units)
  if (
    integrityUnits !== undefined &&
    (!Number.isSafeInteger(integrityUnits) || integrityUnits < 1 || integrityUnits > 100_000)
  )
    throw new Error(`--integrity-units must be an integer from 1 to 100000\n${USAGE}`)
  const crowds = values['scale-volunteers']?.split(',').map((x) => Number(x.trim())) ?? [10, 100, 1000]
  if (crowds.length === 0 || crowds.some((n) => !Number.isSafeInteger(n) || n < 1 || n > 10_000))
    throw new Error(`--scale-volunteers takes crowd sizes from 1 to 10000, comma-separated\n${USAGE}`)
  return {
    overhead: runs('overhead'),
    throughput: runs('throughput'),
    latency: runs('latency'),
    e2e: runs('e2e'),
    p2p: runs('p2p'),
    hoarding: runs('hoarding'),
    browser: runs('browser'),
    signup: runs('signup'),
    integrity: runs('integrity'),
    scale: runs('scale'),
    quick: values.quick,
    threads,
    integrityUnits,
    scaleOverlayOnly: values['scale-overlay-only'],
    scaleVolunteers: crowds,
  }
}

/** Units per class: a few seconds of platform time each in a full run, a fraction of that with --quick. */
function unitClasses(quick: boolean): UnitClass[] {
  return quick
    ? [
        { targetMs: 1, units: 50 },
        { targetMs: 10, units: 20 },
        { targetMs: 100, units: 6 },
      ]
    : [
        { targetMs: 1, units: 500 },
        { targetMs: 10, units: 200 },
        { targetMs: 100, units: 40 },
      ]
}

function natsLoginFromEnv(): { user: string; pass: string } | undefined {
  const user = process.env['NATS_USER']
  return user === undefined || user === '' ? undefined : { user, pass: process.env['NATS_PASS'] ?? '' }
}

interface Report {
  date: string
  command: string
  machine: MachineInfo
  /** Share of all CPUs other processes used in the second before the run, and the load average then and after. */
  background: { cpuShareBefore: number; loadAverageBefore: number; loadAverageAfter?: number }
  /** Where the machine's CPU time went during each section (other processes distort the figures). */
  cpu: {
    overhead?: CpuShares
    throughput?: CpuShares
    latency?: CpuShares
    e2e?: CpuShares
    p2p?: CpuShares
    hoarding?: CpuShares
    integrity?: CpuShares
    scale?: CpuShares
  }
  quick: boolean
  overhead?: OverheadResult
  throughput?: ThroughputResult
  latency?: LeaseLatencyResult
  e2e?: E2eRow[]
  p2p?: P2pResult
  hoarding?: HoardingResult
  browser?: BrowserBenchResult
  signup?: SignupResult
  integrity?: IntegrityResult
  scale?: ScaleResult
}

async function main(): Promise<void> {
  const plan = parsePlan(process.argv.slice(2))
  const started = Date.now()
  const dataDir = await mkdtemp(join(tmpdir(), 'cohort-bench-'))
  let services: Services | undefined
  const cleanup = async (): Promise<void> => {
    await services?.stop()
    services = undefined
    await rm(dataDir, { recursive: true, force: true })
  }
  onShutdown(cleanup, progress)
  const report: Report = {
    date: new Date(started).toISOString(),
    command: ['node', 'dist/bench/run.js', ...process.argv.slice(2)].join(' '),
    machine: machineInfo(),
    background: { cpuShareBefore: await backgroundLoad(), loadAverageBefore: loadAverage() },
    quick: plan.quick,
    cpu: {},
  }
  if (report.background.cpuShareBefore > 0.15) {
    progress(
      `warning: other processes use ${(report.background.cpuShareBefore * 100).toFixed(0)}% of the CPUs; ` +
        'the figures will be low and noisy',
    )
  }
  try {
    services = await startServices({
      dataDir,
      websocket: false,
      log: (line) => {
        if (process.env['COHORT_BENCH_LOG']) progress(`[services] ${line}`)
      },
      ...servicesOptionsFromEnv(process.env),
    })
    const endpoints: Endpoints = {
      redisUrl: services.redisUrl,
      natsUrl: services.natsUrl,
      // The private nats-server's coordinator login; for an external NATS, NATS_USER / NATS_PASS.
      natsCoordinator: services.natsCoordinator ?? natsLoginFromEnv(),
      natsAccountSeed: services.natsAccountSeed,
    }
    const repeats = plan.quick ? 1 : 3
    const servicePids = (): number[] => {
      const pids = services?.pids
      return [pids?.redis, pids?.nats].filter((p): p is number => p !== undefined)
    }
    if (plan.overhead) {
      const account = startCpuAccount(servicePids)
      report.overhead = await runOverhead({
        endpoints,
        threads: plan.threads,
        classes: unitClasses(plan.quick),
        repeats,
      })
      report.cpu.overhead = account()
    }
    if (plan.throughput) {
      const account = startCpuAccount(servicePids)
      report.throughput = await runThroughput({
        endpoints,
        units: plan.quick ? 400 : 2000,
        workers: 2,
        // Tiny units hardly use the threads; the daemons' buffers are sized in time (their default).
        threadsPerWorker: 4,
        bufferUnits: undefined,
        repeats,
        warmups: plan.quick ? 1 : 2,
        servicePids,
      })
      report.cpu.throughput = account()
    }
    // `cohort up --workers 2`: two daemons sharing the cores.
    const upShape = { workers: 2, threadsPerWorker: Math.max(1, Math.floor(plan.threads / 2)) }
    if (plan.latency) {
      const account = startCpuAccount(servicePids)
      report.latency = await runLeaseLatency({
        endpoints,
        identities: 10,
        perIdentityPerSecond: 8,
        samples: plan.quick ? 300 : 2000,
        workers: Array.from({ length: upShape.workers }, () => ({ threads: upShape.threadsPerWorker })),
      })
      report.cpu.latency = account()
    }
    if (plan.e2e) {
      const account = startCpuAccount(servicePids)
      report.e2e = await runE2e({ endpoints, ...upShape, repeats })
      report.cpu.e2e = account()
    }
    if (plan.p2p) {
      const account = startCpuAccount(servicePids)
      report.p2p = await runP2p({
        endpoints,
        // 8 peers x 64 MiB is 512 MiB of copies per mode; --quick keeps it to 64 MiB.
        bytes: (plan.quick ? 8 : 64) * 1024 * 1024,
        peers: 8,
        // Event loops for the peers: the coordinator has its own; together they may use every core.
        threads: Math.min(8, plan.threads),
        repeats,
        servicePids,
      })
      report.cpu.p2p = account()
    }
    if (plan.hoarding) {
      const account = startCpuAccount(servicePids)
      report.hoarding = await runHoarding({
        endpoints,
        hoarders: 20,
        units: plan.quick ? 60 : 200,
        workers: 2,
        threadsPerWorker: Math.max(1, Math.min(4, Math.floor(plan.threads / 2))),
        repeats,
      })
      report.cpu.hoarding = account()
    }
    if (plan.signup && endpoints.natsAccountSeed !== undefined)
      report.signup = await runSignup({ endpoints, count: plan.quick ? 5 : 20 })
    if (plan.integrity) {
      const account = startCpuAccount(servicePids)
      const options = integrityOptions(endpoints, plan.quick)
      report.integrity = await runIntegrity({ ...options, units: plan.integrityUnits ?? options.units })
      report.cpu.integrity = account()
    }
    if (plan.scale) {
      const account = startCpuAccount(servicePids)
      report.scale = await runScale({
        endpoints,
        volunteers: plan.scaleVolunteers,
        compareAt: plan.scaleVolunteers.at(-1),
        units: plan.quick ? 400 : 2000,
        unitDelayMs: 10,
        overlayPeers: [10, 100, 1000],
        overlayMeasureMs: plan.quick ? 4_000 : 10_000,
        overlayOnly: plan.scaleOverlayOnly,
      })
      report.cpu.scale = account()
    }
    // ---- browser vs. daemon (bench/browser.ts): needs no Redis or NATS, only Chromium ----
    if (plan.browser) report.browser = await runBrowserBench(browserBenchOptions(plan.threads, plan.quick))
  } finally {
    await cleanup()
  }
  report.background.loadAverageAfter = loadAverage()

  const out: string[] = [
    `# Cohort benchmarks — ${report.date}`,
    '',
    `${report.machine.cpus} cores (${report.machine.model}), Node ${report.machine.node}; ` +
      `\`${report.command}\`${plan.quick ? ' (quick: fewer units, 1 run)' : ' (median of 3 measured runs)'}; ` +
      `other processes used ${(report.background.cpuShareBefore * 100).toFixed(0)}% of the CPUs before the run`,
  ]
  const { cpu } = report
  const tableOf = <T>(x: T | undefined, f: (x: T) => string): string | undefined =>
    x === undefined ? undefined : f(x)
  // Each section's table under its title, and where the cores' time went meanwhile; none if it did not run.
  const sections: [title: string, body: string | undefined, cpu?: CpuShares][] = [
    [
      'Overhead: platform at quorum 1 vs. direct piscina',
      tableOf(report.overhead, overheadTable),
      cpu.overhead,
    ],
    ['Throughput: tiny units at quorum 2', tableOf(report.throughput, throughputTable), cpu.throughput],
    ['Lease latency: work request to a verified unit', tableOf(report.latency, latencyTable), cpu.latency],
    [
      'End to end: default jobs at quorum 2 vs. their units twice on a pool',
      tableOf(report.e2e, e2eTable),
      cpu.e2e,
    ],
    ['Peer-to-peer content: one input shared by 8 workers', tableOf(report.p2p, p2pTable), cpu.p2p],
    [
      'Hoarding: one job with and without 20 hoarding identities',
      tableOf(report.hoarding, hoardingTable),
      cpu.hoarding,
    ],
    ['Browser vs. daemon: the same primes units', tableOf(report.browser, browserTables)],
    ['Volunteer sign-up: what an identity costs', tableOf(report.signup, signupTable)],
    [
      'Integrity: wrong results accepted when volunteers cheat',
      tableOf(report.integrity, integrityTable),
      cpu.integrity,
    ],
    [
      'Scale: 10 to 1,000 simulated volunteers, two coordinators, overlay discovery',
      tableOf(report.scale, scaleLines),
      cpu.scale,
    ],
    ['Goals: small units cost almost nothing', goalsTable(report)],
  ]
  for (const [title, body, shares] of sections) {
    if (body === undefined) continue
    out.push('', `## ${title}`, '', body)
    if (shares !== undefined) out.push('', cpuLine(shares))
  }
  console.log(out.join('\n'))

  const resultsDir = fileURLToPath(new URL('../../bench/results/', import.meta.url))
  await mkdir(resultsDir, { recursive: true })
  const file = join(resultsDir, 'latest.json')
  await writeFile(file, `${JSON.stringify(report, null, 2)}\n`)
  progress(`wrote ${file} (${((Date.now() - started) / 1000).toFixed(0)} s in all)`)
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err)
    process.exit(1)
  },
)
