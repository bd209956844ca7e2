// The worker as a good guest against a real coordinator: it pauses in place when another program
// takes the CPU and resumes after (the daemon of `cohort worker` in this process, its probes seeing
// only that program), and, as real processes, resumes a unit from its checkpoint after kill -9,
// holds no more work than it can finish before the lease deadlines, and refuses a bad policy.
import test from 'ava'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { startWorker } from '../scripts/run-worker.js'
import { createLogger } from '../shared/index.js'
import {
  createCheckpointStore,
  createCpuProbe,
  parsePolicyLayer,
  ProbeUnavailableError,
  readStatus,
  resolvePolicy,
  type MachineProbes,
  type WorkerStatus,
} from '../worker/policy/index.js'
import { spawnCohort, startCluster, waitForJob, waitUntil, type Cluster } from './helpers/cluster.js'
import { useServices } from './helpers/services.js'

const services = useServices(test)

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cohort-guest-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

function worker(cluster: Cluster, dir: string, policy: object, extra: string[] = []) {
  const config = join(dir, 'worker.json')
  const args = cluster.workerArgs(
    join(dir, 'key.json'),
    '--state-dir',
    join(dir, 'state'),
    '--config',
    config,
    ...extra,
  )
  return { config, start: async () => (await writeFile(config, JSON.stringify(policy)), spawnCohort(args)) }
}

const status = (dir: string): Promise<WorkerStatus | undefined> =>
  readStatus(join(dir, 'state')).catch(() => undefined)

/**
 * Probes that count one program's CPU use as "other programs" (percent of the whole machine, from its
 * own /proc schedstat on Linux; elsewhere 100 while it runs), and nothing else: the idle policy then
 * reacts to the test's own load and never to the rest of a busy machine. No input or battery readings.
 */
function onlyThisProgram(program: () => ChildProcess | undefined): MachineProbes {
  const cores = availableParallelism()
  let prev: { pid: number; at: bigint; cpuNs: number } | undefined
  const cpuNsOf = (pid: number): number | undefined => {
    try {
      const ns = Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0])
      return Number.isFinite(ns) ? ns : undefined
    } catch {
      return undefined
    }
  }
  return {
    otherCpuPercent() {
      const p = program()
      if (p?.pid === undefined || p.exitCode !== null || p.signalCode !== null) {
        prev = undefined
        return 0
      }
      if (process.platform !== 'linux') return 100
      const at = process.hrtime.bigint()
      const cpuNs = cpuNsOf(p.pid)
      const before = prev?.pid === p.pid ? prev : undefined
      prev = cpuNs === undefined ? undefined : { pid: p.pid, at, cpuNs }
      if (before === undefined || cpuNs === undefined) return 0
      return Math.min(100, ((cpuNs - before.cpuNs) / Number(at - before.at) / cores) * 100)
    },
    inputIdleMs: () => Promise.reject(new ProbeUnavailableError('not read in this test')),
    battery: () => Promise.resolve({ onBattery: false, percent: undefined }),
    close() {},
  }
}

test.serial(
  'idle - a busy CPU pauses running units; they resume when it calms and the job is right',
  async (t) => {
    const cluster = await startCluster({ services: services(), tuning: { leaseMs: 600_000 } })
    t.teardown(() => cluster.stop())
    const dir = await tempDir(t)
    // The daemon of `cohort worker`, in this process so that its probes see only the test's hog: other
    // programs on the machine (other test files run at once) neither pause it nor keep it paused.
    const other: { hog?: ChildProcess } = {}
    const lines: string[] = []
    const worker = await startWorker({
      natsUrl: services().natsUrl,
      coordinatorUrl: cluster.volunteerAccess.coordinatorUrl,
      keyFile: join(dir, 'key.json'),
      trust: [cluster.cliArgs.trust],
      subjectPrefix: cluster.subjectPrefix,
      log: createLogger('worker', (r) => void lines.push(`${r.msg} ${JSON.stringify(r.fields ?? {})}`)),
      policy: resolvePolicy(
        parsePolicyLayer(
          {
            run: 'idle',
            // Any CPU use of the hog counts: 2 % of the machine is a few scheduler ticks a poll.
            idle: { input: 'none', otherCpuPercent: 2, resumeSeconds: 1 },
            cpu: { threads: 1 },
            pollSeconds: 0.25,
          },
          'test',
        ),
      ),
      stateDir: join(dir, 'state'),
      probes: onlyThisProgram(() => other.hog),
    })
    t.teardown(() => worker.stop())
    const job = await cluster.api.submit({
      type: 'primes',
      params: { to: 4_000_000_000, unitSize: 500_000_000 },
      redundancy: { quorum: 1, maxReplicas: 1 },
    })
    const suspensions = (): number => lines.filter((l) => /worker suspended/.test(l)).length
    await waitUntil('a unit computing', async () => (await status(dir))?.state === 'computing')
    t.is(suspensions(), 0, 'nothing paused it before the hog')

    // Another program takes a whole core.
    const hogStarted = performance.now()
    const hog = spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' })
    other.hog = hog
    t.teardown(() => void hog.kill('SIGKILL'))
    await waitUntil('the worker suspended', () => suspensions() > 0)
    // Logged, not asserted: how fast depends on the machine and its other load.
    t.log(`pause latency from hog start: ${(performance.now() - hogStarted).toFixed(0)} ms`)
    t.true(lines.some((l) => /worker suspended.*CPU busy/.test(l)))

    // While paused, the running unit makes no progress.
    await waitUntil('the status file saying paused', async () => (await status(dir))?.state === 'paused')
    const a = await status(dir)
    // The thing tested is that nothing moves for a while: over a second, a running unit would have sent
    // about four progress reports. No event can stand for "nothing happened".
    await new Promise((r) => setTimeout(r, 1_200))
    const b = await status(dir)
    t.is(b?.state, 'paused')
    t.is(b?.reason, 'CPU busy')
    t.deepEqual(
      b?.units.filter((u) => u.state === 'running').map((u) => u.progress),
      a?.units.filter((u) => u.state === 'running').map((u) => u.progress),
    )
    // This process's CPU (the coordinator runs here too): a paused daemon computes nothing.
    t.true((b?.ownCpuPercent ?? 100) < 20, `a paused daemon used ${b?.ownCpuPercent} % CPU`)

    const pausesWithHog = suspensions()
    hog.kill('SIGKILL')
    await waitUntil('the worker resumed computing', () =>
      lines.some((l) => /worker resumed computing/.test(l)),
    )
    const done = await waitForJob(cluster.api, job.id, 120_000)
    t.is(suspensions(), pausesWithHog, 'no pause after the hog ended')
    t.is(done.state, 'completed')
    t.like((await cluster.api.result(job.id)).result, { count: 189_961_812 })
  },
)

test.serial("idle - the machine's CPU probe counts another program's CPU use", async (t) => {
  // The idle test above gives its daemon probes that see only its hog; this checks the probe a real
  // daemon uses. Other load on the machine can only add to what it reports, so it is bounded below:
  // at least the hog's own share, measured from the hog's /proc schedstat over the same interval.
  if (process.platform !== 'linux') return t.log('the hog is measured through /proc: Linux only')
  const cores = availableParallelism()
  const cpuNs = (pid: number): number => Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0])
  const hog = spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' })
  t.teardown(() => void hog.kill('SIGKILL'))
  const pid = hog.pid!
  const probe = createCpuProbe()
  const from = { at: process.hrtime.bigint(), ns: cpuNs(pid) }
  probe()
  // A fixed amount of the hog's work, not of time: 400 ms on a CPU, however long that takes here.
  await waitUntil('the hog using 400 ms of CPU', () => cpuNs(pid) - from.ns >= 400e6)
  const other = probe()
  const to = { at: process.hrtime.bigint(), ns: cpuNs(pid) }
  const hogShare = ((to.ns - from.ns) / Number(to.at - from.at) / cores) * 100
  t.log(
    `hog ${hogShare.toFixed(1)} % of the machine; the probe says other programs used ${other.toFixed(1)} %`,
  )
  // The probe reads /proc/stat in ticks of 10 ms: a few ticks of slack over 400 ms.
  t.true(other >= hogShare * 0.9, `probe ${other.toFixed(1)} % < hog ${hogShare.toFixed(1)} %`)
})

test.serial(
  'checkpoint - a worker killed mid-unit resumes from its checkpoint after restart, and the result is right',
  async (t) => {
    const cluster = await startCluster({ services: services(), tuning: { leaseMs: 600_000 } })
    t.teardown(() => cluster.stop())
    const dir = await tempDir(t)
    const w = worker(cluster, dir, {
      cpu: { threads: 1, dutyCycle: 40 },
      checkpointSeconds: 0.2,
      battery: { runOnBattery: true },
    })
    const first = await w.start()
    t.teardown(() => first.kill())
    await first.waitForLine(/worker started/)
    // One unit of 10^9 numbers: 3815 segments of the sieve, one yield point (step) each.
    const job = await cluster.api.submit({
      type: 'primes',
      params: { from: 1_000_000_000, to: 2_000_000_000, unitSize: 1_000_000_000 },
      redundancy: { quorum: 1, maxReplicas: 1 },
    })
    const units = join(dir, 'state', 'units')
    await waitUntil(
      'the unit a third done, with a checkpoint on disk',
      async () =>
        ((await status(dir))?.units[0]?.progress ?? 0) > 0.33 &&
        existsSync(units) &&
        (await readdir(units)).some((f) => f.endsWith('.ckpt')),
      60_000,
    )
    const before = (await status(dir))!.units[0]!
    const checkpoints = createCheckpointStore(join(dir, 'state'))
    const seenStep = (await checkpoints.list())[0]?.step ?? 0
    await first.kill('SIGKILL')
    // What the killed worker left on disk: the step the restarted one must resume at.
    const savedStep = (await checkpoints.list())[0]?.step ?? -1

    const second = spawnCohort(first.child.spawnargs.slice(2))
    t.teardown(() => second.kill())
    const resumedLine = await second.waitForLine(/resumed unit .* at step \d+/, 30_000)
    const k = Number(/at step (\d+)/.exec(resumedLine)![1])
    const done = await waitForJob(cluster.api, job.id, 120_000)
    t.is(done.state, 'completed')
    t.like((await cluster.api.result(job.id)).result, { count: 47_374_753 })
    const ended = await second.waitForLine(/unit run ended/, 10_000)
    const steps = Number(/"steps":(\d+)/.exec(ended)![1])
    t.log(
      `killed at step ~${before.steps} (progress ${(before.progress * 100).toFixed(1)} %), resumed at step ${k}, ran ${steps} more steps`,
    )
    t.true(k > 0)
    t.is(k, savedStep, 'resumed at the last checkpoint saved before the kill')
    t.true(savedStep >= seenStep, 'no older checkpoint than one already on disk')
    t.is(k + steps, 3815, 'the resumed run computes exactly the segments after the checkpoint')
    t.is(cluster.coordinators[0]!.counters.leasesExpired, 0)
  },
)

test.serial(
  'deadlines - the worker never holds more units than it can finish before their lease deadline',
  async (t) => {
    const leaseMs = 3_000
    // The coordinator's lease cap lifted, so that only the worker's own deadline rule limits it.
    const cluster = await startCluster({ services: services(), tuning: { leaseMs, leaseCapBase: 64 } })
    t.teardown(() => cluster.stop())
    const dir = await tempDir(t)
    // --buffer 50 would let it hold 51 units; the deadline cap allows far fewer.
    const w = worker(cluster, dir, { cpu: { threads: 1 }, battery: { runOnBattery: true } }, [
      '--buffer',
      '50',
    ])
    const child = await w.start()
    t.teardown(() => child.kill())
    await child.waitForLine(/worker started/)
    const job = await cluster.api.submit({
      type: 'primes',
      params: { to: 4_000_000_000, unitSize: 200_000_000 },
      redundancy: { quorum: 1, maxReplicas: 1 },
    })
    let maxHeld = 0
    let worst = 0
    let loosest = 0
    let samples = 0
    for (;;) {
      const s = await status(dir)
      const secs = s?.unitSeconds['primes@1']
      if (s !== undefined && secs !== undefined && s.unitsDone >= 2) {
        samples++
        maxHeld = Math.max(maxHeld, s.held)
        // Running + what fits in 80 % of the lease at the measured speed, + 1 for measurement noise.
        const bound = 1 + Math.floor((0.8 * leaseMs) / 1000 / secs) + 1
        worst = Math.max(worst, s.held - bound)
        loosest = Math.max(loosest, bound)
      }
      const j = await cluster.api.job(job.id)
      if (j.state === 'completed' || j.state === 'failed') break
      // A sampling interval (the test looks at every state the worker passes through), not a wait for an event.
      await new Promise((r) => setTimeout(r, 100))
    }
    const s = await status(dir)
    t.log(
      `measured ${s?.unitSeconds['primes@1']?.toFixed(2)} s/unit, lease ${leaseMs} ms, most held ${maxHeld} (${samples} samples)`,
    )
    t.true(samples > 3)
    t.true(worst <= 0, `held ${worst} more units than the deadline allows`)
    // The deadline, not --buffer, is what limited the units held (else this test tests nothing).
    t.true(loosest < 51, `the deadline allowed ${loosest} units, no fewer than --buffer 50 does`)
    t.like((await cluster.api.result(job.id)).result, { count: 189_961_812 })
  },
)

test.serial('cli - a bad policy is refused with a message naming the field and exit code 2', async (t) => {
  const dir = await tempDir(t)
  const run = async (policy: object): Promise<{ code: number | null; lines: string[] }> => {
    const config = join(dir, `${Math.random()}.json`)
    await writeFile(config, JSON.stringify(policy))
    const child = spawnCohort([
      'worker',
      '--config',
      config,
      '--nats-url',
      'nats://127.0.0.1:1',
      '--trust',
      'x',
    ])
    const code = await new Promise<number | null>((resolve) => child.child.once('exit', (c) => resolve(c)))
    return { code, lines: child.lines }
  }
  const unknown = await run({ cpu: { threads: 1 }, idle: { cpuPercent: 10 } })
  t.is(unknown.code, 2)
  t.true(
    unknown.lines.some((l) => /idle\.cpuPercent is not a known setting/.test(l)),
    unknown.lines.join('\n'),
  )
  const negative = await run({ cpu: { dutyCycle: -20 } })
  t.is(negative.code, 2)
  t.true(negative.lines.some((l) => /cpu\.dutyCycle must be a number from 1 to 100, got -20/.test(l)))
})
