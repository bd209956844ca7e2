// Test helper: CPU time of this process's threads, for tests that measure what a unit thread uses.
// On Linux each thread's own figures from /proc/self/task/<tid>/schedstat (nanoseconds on a CPU, and
// waiting runnable for one), so neither other programs nor this process's other threads count;
// elsewhere the whole process's CPU time (and no waiting time).
import { readdirSync, readFileSync } from 'node:fs'

export interface ThreadTimes {
  /** Nanoseconds on a CPU. */
  cpu: number
  /** Nanoseconds runnable but waiting for a CPU (another program had it). */
  waited: number
}

export interface CpuSample {
  /** performance.now() when taken. */
  at: number
  /** By thread id; one entry, `process`, where threads cannot be told apart. */
  threads: Map<string, ThreadTimes>
}

const TASKS = '/proc/self/task'

function perThread(): Map<string, ThreadTimes> | undefined {
  let tids: string[]
  try {
    tids = readdirSync(TASKS)
  } catch {
    return undefined
  }
  const out = new Map<string, ThreadTimes>()
  for (const tid of tids) {
    try {
      const [cpu, waited] = readFileSync(`${TASKS}/${tid}/schedstat`, 'utf8').split(' ').map(Number)
      if (Number.isFinite(cpu) && Number.isFinite(waited)) out.set(tid, { cpu: cpu!, waited: waited! })
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return out.size > 0 ? out : undefined
}

export function sampleCpu(): CpuSample {
  const at = performance.now()
  const threads = perThread()
  if (threads !== undefined) return { at, threads }
  const u = process.cpuUsage()
  return { at, threads: new Map([['process', { cpu: (u.user + u.system) * 1000, waited: 0 }]]) }
}

/**
 * The busiest thread between two samples (a thread absent from either is skipped): its CPU milliseconds,
 * and its demand, CPU plus the time it waited for a CPU: what it would have used alone on the machine.
 */
export function busiestThread(from: CpuSample, to: CpuSample): { cpuMs: number; demandMs: number } {
  let best = { cpuMs: 0, demandMs: 0 }
  for (const [tid, now] of to.threads) {
    const before = from.threads.get(tid)
    if (before === undefined) continue
    const cpuMs = (now.cpu - before.cpu) / 1e6
    if (cpuMs > best.cpuMs) best = { cpuMs, demandMs: cpuMs + (now.waited - before.waited) / 1e6 }
  }
  return best
}
