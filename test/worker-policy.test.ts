// The volunteer's policy without a cluster: config validation, the pause verdict, the work planner,
// exact resume from checkpoints, and the duty cycle measured on a real piscina thread.
import test from 'ava'
import { countCompletions } from '../jobs/nqueens-search.js'
import { countPrimes, type SieveCheckpoint } from '../jobs/primes-sieve.js'
import { ConfigError } from '../shared/index.js'
import { createPoolRunner } from '../worker/index.js'
import { loadEnvConfig } from '../scripts/config.js'
import { loadWorkerPolicy } from '../scripts/worker-config.js'
import {
  admitUnits,
  createRunControl,
  DEFAULT_POLICY,
  parsePolicyLayer,
  pauseReason,
  resolvePolicy,
  type MachineSample,
} from '../worker/policy/index.js'

test('config - an unknown key is refused, naming it', (t) => {
  t.throws(() => parsePolicyLayer({ cpu: { dutyCyle: 50 } }, 'w.json'), {
    instanceOf: ConfigError,
    message: /^w\.json: cpu\.dutyCyle is not a known setting/,
  })
})

test('config - out-of-range and mistyped values are refused, naming the field', (t) => {
  t.throws(() => parsePolicyLayer({ cpu: { dutyCycle: -5 } }, 'f'), {
    message: /cpu\.dutyCycle must be a number from 1 to 100/,
  })
  t.throws(() => parsePolicyLayer({ idle: { otherCpuPercent: 101 } }, 'f'), {
    message: /idle\.otherCpuPercent/,
  })
  t.throws(() => parsePolicyLayer({ run: 'sometimes' }, 'f'), { message: /run must be "always" or "idle"/ })
  t.throws(() => parsePolicyLayer({ windows: ['22:00-7:00'] }, 'f'), {
    message: /windows\[0\] must look like/,
  })
  t.throws(() => parsePolicyLayer({ battery: { runOnBattery: 'yes' } }, 'f'), {
    message: /battery\.runOnBattery/,
  })
  t.throws(() => parsePolicyLayer({ cpu: { threads: 1.5 } }, 'f'), {
    message: /cpu\.threads must be an integer/,
  })
})

test('config - peer settings are validated, and --no-peers and --peer-cache-mb reach the policy', async (t) => {
  t.throws(() => parsePolicyLayer({ peers: { cacheMb: 1 } }, 'f'), {
    message: /peers\.cacheMb must be an integer from 16/,
  })
  t.throws(() => parsePolicyLayer({ peers: { steal: 'no' } }, 'f'), {
    message: /peers\.steal must be true or false/,
  })
  t.throws(() => parsePolicyLayer({ peers: { cache: 5 } }, 'f'), {
    message: /peers\.cache is not a known setting/,
  })
  t.deepEqual(resolvePolicy().peers, { enabled: true, cacheMb: 1024, steal: true })
  const { policy } = await loadWorkerPolicy(
    { keyFile: 'k.json', config: undefined, peers: false, peerCacheMb: '64' },
    loadEnvConfig({}),
  )
  t.deepEqual(policy.peers, { enabled: false, cacheMb: 64, steal: true })
  await t.throwsAsync(loadWorkerPolicy({ keyFile: 'k.json', peerCacheMb: 'lots' }, loadEnvConfig({})), {
    message: /--peer-cache-mb must be a number/,
  })
})

test('config - layers override defaults field by field', (t) => {
  const p = resolvePolicy(
    parsePolicyLayer({ run: 'idle', cpu: { dutyCycle: 40 }, idle: { inputMinutes: 5 } }, 'file'),
    parsePolicyLayer({ cpu: { dutyCycle: 60 } }, 'flag'),
  )
  t.is(p.run, 'idle')
  t.is(p.cpu.dutyCycle, 60)
  t.is(p.idle.inputMinutes, 5)
  t.is(p.idle.otherCpuPercent, DEFAULT_POLICY.idle.otherCpuPercent)
})

const sample = (over: Partial<MachineSample>): MachineSample => ({
  at: new Date(2025, 0, 1, 12, 0),
  otherCpuPercent: 0,
  inputIdleMs: undefined,
  battery: undefined,
  ...over,
})

test('policy - the verdict names why computing is paused', (t) => {
  const idle = resolvePolicy({ run: 'idle', windows: ['22:00-07:00'] })
  t.is(pauseReason(idle, sample({})), 'outside window')
  const night = new Date(2025, 0, 1, 23, 30)
  t.is(pauseReason(idle, sample({ at: night })), undefined)
  t.is(pauseReason(idle, sample({ at: new Date(2025, 0, 2, 6, 59) })), undefined)
  t.is(pauseReason(idle, sample({ at: night, otherCpuPercent: 60 })), 'CPU busy')
  t.is(pauseReason(idle, sample({ at: night, inputIdleMs: 10_000 })), 'user active')
  t.is(pauseReason(idle, sample({ at: night, battery: { onBattery: true, percent: 80 } })), 'on battery')
  const battery = resolvePolicy({ battery: { runOnBattery: true, minPercent: 30 } })
  t.is(pauseReason(battery, sample({ battery: { onBattery: true, percent: 20 } })), 'battery low')
  t.is(pauseReason(battery, sample({ battery: { onBattery: true, percent: 50 } })), undefined)
  // `always` ignores the user and other programs.
  t.is(pauseReason(resolvePolicy(), sample({ otherCpuPercent: 90, inputIdleMs: 0 })), undefined)
})

test('planner - never holds more than it can finish before the lease deadline', (t) => {
  const held = (n: number) =>
    Array.from({ length: n }, (_, i) => ({
      replicaId: `r${i}`,
      kind: 'primes@1',
      state: i === 0 ? ('running' as const) : ('buffered' as const),
      expiresAt: Date.now() + 10_000,
    }))
  const base = {
    now: Date.now(),
    threads: 1,
    unitSeconds: () => 1,
    progress: () => 0,
    dutyCycle: 100,
    bufferMinutes: 10,
    leaseMs: 10_000,
  }
  // 0.8 * 10 s of work fits 8 units of 1 s.
  t.is(admitUnits({ ...base, held: [] }), 8)
  t.is(admitUnits({ ...base, held: held(3) }), 5)
  // At a 50 % duty cycle a unit takes twice the wall time.
  t.is(admitUnits({ ...base, held: [], dutyCycle: 50 }), 4)
  // The buffer in minutes caps too: 0.05 min = 3 s.
  t.is(admitUnits({ ...base, held: [], bufferMinutes: 0.05 }), 3)
  // An idle thread always gets one unit, even when a unit is longer than the lease.
  t.is(admitUnits({ ...base, held: [], unitSeconds: () => 100 }), 1)
})

test('kernels - primes resumed from any checkpoint give the identical count', (t) => {
  const from = 1e9
  const to = 1e9 + 5e6
  const seen: SieveCheckpoint[] = []
  const full = countPrimes(from, to, { checkpoint: (s) => seen.push({ ...s }) })
  t.true(seen.length > 10)
  for (const cp of [seen[0], seen[7], seen[seen.length - 2]]) {
    let redone = 0
    const resumed = countPrimes(from, to, { resumeFrom: cp, shouldYield: () => (redone++, false) })
    t.is(resumed, full)
    t.is(redone + cp!.segment, seen.length, 'only the segments after the checkpoint are computed')
  }
  // A checkpoint that does not fit is ignored (the count starts over).
  t.is(countPrimes(from, to, { resumeFrom: { segment: 1e9, count: 3 } }), full)
})

test('kernels - nqueens resumed from any checkpoint give the identical count', (t) => {
  const seen: unknown[] = []
  const full = countCompletions(13, [], { checkpoint: (s) => seen.push(structuredClone(s)) })
  t.is(full, 73_712)
  t.true(seen.length > 3)
  for (const cp of seen) t.is(countCompletions(13, [], { resumeFrom: cp }), full)
})

test.serial('duty cycle - at 50 % a thread uses about half the CPU it uses uncapped', async (t) => {
  const control = createRunControl()
  const runner = createPoolRunner({ threads: 1, control })
  t.teardown(() => runner.close())
  const measure = async (duty: number): Promise<number> => {
    control.setDutyCycle(duty)
    const abort = new AbortController()
    const run = runner.run({ kind: 'primes@1', input: { from: 1e11, to: 1e11 + 1e9 } }, abort.signal, {})
    run.catch(() => {})
    await new Promise((r) => setTimeout(r, 400)) // thread start and sieve set-up
    const c0 = process.cpuUsage()
    const w0 = performance.now()
    await new Promise((r) => setTimeout(r, 2_000))
    const c1 = process.cpuUsage(c0)
    const wall = performance.now() - w0
    abort.abort()
    await run.catch(() => {})
    return ((c1.user + c1.system) / 1000 / wall) * 100
  }
  const uncapped = await measure(100)
  const capped = await measure(50)
  const ratio = capped / uncapped
  t.log(
    `CPU uncapped ${uncapped.toFixed(1)} %, at 50 % duty ${capped.toFixed(1)} %, ratio ${ratio.toFixed(2)}`,
  )
  t.true(Math.abs(ratio - 0.5) <= 0.15, `ratio ${ratio.toFixed(2)} not within 0.5 ± 0.15`)
})

test.serial('control - a paused thread stops computing in place and continues after resume', async (t) => {
  const control = createRunControl({ checkpointMs: 0 })
  const runner = createPoolRunner({ threads: 1, control })
  t.teardown(() => runner.close())
  let progress = 0
  const run = runner.run(
    { kind: 'primes@1', input: { from: 1e9, to: 1e9 + 3e8 } },
    new AbortController().signal,
    {
      onProgress: (f) => (progress = f),
    },
  )
  while (progress === 0) await new Promise((r) => setTimeout(r, 20))
  control.pause()
  await new Promise((r) => setTimeout(r, 300))
  const at = progress
  const c0 = process.cpuUsage()
  await new Promise((r) => setTimeout(r, 1_000))
  const used = process.cpuUsage(c0)
  t.is(progress, at, 'no progress while paused')
  t.true(
    (used.user + used.system) / 1000 < 150,
    `paused thread used ${(used.user + used.system) / 1000} ms of CPU`,
  )
  control.resume()
  const out = await run
  t.true(out.computeMs > 0)
  t.true(progress > at)
})
