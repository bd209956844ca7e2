// What the machine looked like around a run, so figures taken on a busy machine can be recognised.
import { readFileSync } from 'node:fs'
import { availableParallelism, cpus, loadavg } from 'node:os'
import { sleep } from './stats.js'

export interface MachineInfo {
  cpus: number
  model: string
  node: string
  platform: string
}

export function machineInfo(): MachineInfo {
  return {
    cpus: availableParallelism(),
    model: cpus()[0]?.model ?? 'unknown',
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
  }
}

function cpuTimes(): { busy: number; total: number } {
  let busy = 0
  let total = 0
  for (const c of cpus()) {
    const t = c.times
    const all = t.user + t.nice + t.sys + t.irq + t.idle
    total += all
    busy += all - t.idle
  }
  return { busy, total }
}

/** Fraction of all CPUs busy over `ms` while this process idles: other processes' load. */
export async function backgroundLoad(ms = 1000): Promise<number> {
  const a = cpuTimes()
  await sleep(ms)
  const b = cpuTimes()
  const total = b.total - a.total
  return total > 0 ? (b.busy - a.busy) / total : 0
}

/** The 1-minute load average. */
export const loadAverage = (): number => loadavg()[0] ?? 0

/** CPU time (user + system) of process `pid` so far, in ms, from /proc; undefined where there is no /proc. */
export function processCpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name (which may hold spaces) start at field 3; utime and stime are 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const ticks = Number(fields[11]) + Number(fields[12])
    return Number.isFinite(ticks) ? (ticks * 1000) / CLOCK_TICKS : undefined
  } catch {
    return undefined
  }
}

/** USER_HZ: 100 on every Linux architecture Node supports. */
const CLOCK_TICKS = 100

/** How the machine's CPU time was spent between `startCpuAccount()` and calling the function it returns. */
export interface CpuShares {
  /** Shares of all cores' time: this process (all threads), the private Redis and NATS, everything else. */
  own: number
  services: number
  others: number
}

export function startCpuAccount(servicePids: () => number[] = () => []): () => CpuShares {
  const servicesMs = (): number => servicePids().reduce((sum, pid) => sum + (processCpuMs(pid) ?? 0), 0)
  const m0 = cpuTimes()
  const own0 = process.cpuUsage()
  const s0 = servicesMs()
  return () => {
    const m = cpuTimes()
    const ownUs = process.cpuUsage(own0)
    const total = m.total - m0.total
    if (total <= 0) return { own: 0, services: 0, others: 0 }
    const own = (ownUs.user + ownUs.system) / 1000 / total
    const services = (servicesMs() - s0) / total
    const busy = (m.busy - m0.busy) / total
    return { own, services, others: Math.max(0, busy - own - services) }
  }
}
