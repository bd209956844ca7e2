// The main thread's handle on the worker-daemon thread (worker-host.ts): one request at a time,
// each answered by exactly one reply.
import { Worker } from 'node:worker_threads'
import type { HostInit, HostReply, HostReport, HostRequest } from './worker-host-protocol.js'

export interface WorkerHost {
  arm(): Promise<void>
  report(): Promise<HostReport>
  stop(): Promise<void>
}

const STOP_TIMEOUT_MS = 30_000

export async function startWorkerHost(init: HostInit): Promise<WorkerHost> {
  const thread = new Worker(new URL('./worker-host.js', import.meta.url), { workerData: init })
  let waiting: { resolve: (r: HostReply) => void; reject: (e: Error) => void } | undefined
  let dead: Error | undefined
  const fail = (err: Error): void => {
    dead ??= err
    waiting?.reject(err)
    waiting = undefined
  }
  thread.on('message', (reply: HostReply) => {
    const w = waiting
    waiting = undefined
    if (reply.type === 'failed') w?.reject(new Error(reply.message))
    else w?.resolve(reply)
  })
  thread.on('error', fail)
  thread.on('exit', (code) => fail(new Error(`worker host thread exited (code ${code})`)))

  const next = (): Promise<HostReply> =>
    new Promise<HostReply>((resolve, reject) => {
      if (dead !== undefined) reject(dead)
      else waiting = { resolve, reject }
    })
  let queue: Promise<unknown> = Promise.resolve()
  const call = (req: HostRequest): Promise<HostReply> => {
    const p = queue.then(() => {
      const reply = next()
      thread.postMessage(req)
      return reply
    })
    queue = p.catch(() => undefined)
    return p
  }
  const expectReport = (r: HostReply): HostReport => {
    if (r.type !== 'report') throw new Error(`worker host answered ${r.type}, expected a report`)
    return r
  }

  try {
    const first = await next()
    if (first.type !== 'ready') throw new Error(`worker host answered ${first.type}, expected ready`)
  } catch (err) {
    await thread.terminate()
    throw err
  }

  return {
    async arm() {
      expectReport(await call({ type: 'arm' }))
    },
    async report() {
      return expectReport(await call({ type: 'report' }))
    },
    async stop() {
      if (dead !== undefined) return
      let timer: ReturnType<typeof setTimeout> | undefined
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, STOP_TIMEOUT_MS)
      })
      await Promise.race([call({ type: 'stop' }).catch(() => undefined), timeout])
      clearTimeout(timer)
      await thread.terminate()
    },
  }
}
