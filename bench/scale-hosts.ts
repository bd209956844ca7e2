// The scale section's handles on its coordinator processes (scale-coordinator.ts) and volunteer
// threads (scale-volunteers.ts): each answers one request with exactly one reply, in order.
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import type {
  CoordinatorProcessInit,
  CoordinatorReply,
  CoordinatorRequest,
  CoordinatorStats,
  VolunteersInit,
  VolunteersReply,
  VolunteersReport,
  VolunteersRequest,
} from './scale-protocol.js'

type Reply = { type: string; message?: string }

/** Replies in order: each `next()` takes the next reply; a `failed` reply or the host's death rejects. */
function replies<R extends Reply>(): {
  next(timeoutMs: number, what: string): Promise<R>
  take(r: R): void
  die(err: Error): void
} {
  const queue: R[] = []
  const waiting: { resolve: (r: R) => void; reject: (e: Error) => void }[] = []
  let dead: Error | undefined
  return {
    take(r) {
      const w = waiting.shift()
      if (w === undefined) queue.push(r)
      else if (r.type === 'failed') w.reject(new Error(r.message ?? 'failed'))
      else w.resolve(r)
    },
    die(err) {
      dead ??= err
      for (const w of waiting.splice(0)) w.reject(err)
    },
    next(timeoutMs, what) {
      const queued = queue.shift()
      if (queued !== undefined)
        return queued.type === 'failed'
          ? Promise.reject(new Error(queued.message ?? 'failed'))
          : Promise.resolve(queued)
      if (dead !== undefined) return Promise.reject(dead)
      return new Promise<R>((resolve, reject) => {
        const timer = setTimeout(() => {
          const i = waiting.indexOf(w)
          if (i >= 0) waiting.splice(i, 1)
          reject(new Error(`${what}: no answer within ${timeoutMs} ms`))
        }, timeoutMs)
        const w = {
          resolve: (r: R) => {
            clearTimeout(timer)
            resolve(r)
          },
          reject: (e: Error) => {
            clearTimeout(timer)
            reject(e)
          },
        }
        waiting.push(w)
      })
    },
  }
}

function expect<R extends Reply, T extends R['type']>(r: R, type: T): Extract<R, { type: T }> {
  if (r.type !== type) throw new Error(`expected ${type}, got ${r.type}`)
  return r as Extract<R, { type: T }>
}

export interface CoordinatorProcess {
  url: string
  pid: number
  stats(): Promise<CoordinatorStats>
  stop(): Promise<void>
}

const START_TIMEOUT_MS = 60_000
const STATS_TIMEOUT_MS = 10_000
const STOP_TIMEOUT_MS = 30_000

export async function startCoordinatorProcess(init: CoordinatorProcessInit): Promise<CoordinatorProcess> {
  const child: ChildProcess = fork(fileURLToPath(new URL('./scale-coordinator.js', import.meta.url)), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    // COHORT_BENCH_CPU_PROF=<dir>: a V8 CPU profile of each coordinator, written when it stops.
    execArgv: process.env['COHORT_BENCH_CPU_PROF']
      ? ['--cpu-prof', '--cpu-prof-dir', process.env['COHORT_BENCH_CPU_PROF']]
      : [],
  })
  const r = replies<CoordinatorReply>()
  child.on('message', (m) => r.take(m as CoordinatorReply))
  child.on('error', (err) => r.die(err))
  child.on('exit', (code) => r.die(new Error(`coordinator process exited (code ${code})`)))
  const ask = (req: CoordinatorRequest): void => {
    child.send(req)
  }
  let started: { url: string }
  try {
    ask({ type: 'init', init })
    started = expect(await r.next(START_TIMEOUT_MS, 'coordinator start'), 'started')
  } catch (err) {
    child.kill()
    throw err
  }
  return {
    url: started.url,
    pid: child.pid ?? 0,
    async stats() {
      ask({ type: 'stats' })
      return expect(await r.next(STATS_TIMEOUT_MS, 'coordinator stats'), 'stats')
    },
    async stop() {
      if (child.exitCode !== null) return
      try {
        ask({ type: 'stop' })
        await r.next(STOP_TIMEOUT_MS, 'coordinator stop')
      } catch {
        child.kill()
      }
    },
  }
}

export interface VolunteersThread {
  start(): Promise<void>
  report(): Promise<VolunteersReport>
  stop(): Promise<void>
}

export async function startVolunteersThread(
  init: VolunteersInit,
  connectTimeoutMs: number,
): Promise<VolunteersThread> {
  const thread = new Worker(new URL('./scale-volunteers.js', import.meta.url), { workerData: init })
  const r = replies<VolunteersReply>()
  thread.on('message', (m: VolunteersReply) => r.take(m))
  thread.on('error', (err) => r.die(err))
  thread.on('exit', (code) => r.die(new Error(`volunteer thread exited (code ${code})`)))
  const call = async (req: VolunteersRequest, what: string): Promise<VolunteersReply> => {
    thread.postMessage(req)
    return r.next(STOP_TIMEOUT_MS, what)
  }
  try {
    expect(await r.next(connectTimeoutMs, `connecting ${init.count} volunteers`), 'ready')
  } catch (err) {
    await thread.terminate()
    throw err
  }
  return {
    async start() {
      expect(await call({ type: 'start' }, 'volunteers start'), 'ready')
    },
    async report() {
      return expect(await call({ type: 'report' }, 'volunteers report'), 'report')
    },
    async stop() {
      await call({ type: 'stop' }, 'volunteers stop').catch(() => undefined)
      await thread.terminate()
    },
  }
}
