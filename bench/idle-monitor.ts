// The idle monitor's own cost: sample the machine (CPU, user input, battery) at the policy's rate for
// N seconds and report this process's CPU milliseconds per second, against a baseline of the same
// process sleeping for the same time. Run: node dist/bench/idle-monitor.js [seconds] [pollSeconds]
import { silentLogger } from '../shared/index.js'
import { createIdleMonitor, createMachineProbes, resolvePolicy } from '../worker/policy/index.js'

const seconds = Number(process.argv[2] ?? 10)
const pollSeconds = Number(process.argv[3] ?? 1)

async function cpuMsPerSecond(run: () => Promise<void>): Promise<number> {
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  await run()
  const c = process.cpuUsage(c0)
  return (c.user + c.system) / 1000 / ((performance.now() - t0) / 1000)
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))
await sleep(1_000) // start-up work (module loading, JIT) out of the way
const baseline = await cpuMsPerSecond(() => sleep(seconds * 1000))
const monitored = await cpuMsPerSecond(async () => {
  const monitor = createIdleMonitor({
    policy: resolvePolicy({ run: 'idle', pollSeconds, battery: { runOnBattery: false } }),
    probes: createMachineProbes(),
    log: silentLogger,
  })
  monitor.start()
  await sleep(seconds * 1000)
  monitor.stop()
})
console.log(`| idle monitor (${process.platform}, poll ${pollSeconds} s, ${seconds} s) | CPU ms/s |`)
console.log('|---|---|')
console.log(`| baseline: sleeping process | ${baseline.toFixed(2)} |`)
console.log(`| with the monitor | ${monitored.toFixed(2)} |`)
console.log(`| monitor's own cost | ${(monitored - baseline).toFixed(2)} |`)
