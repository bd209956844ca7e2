// Where the dashboard's live data comes from. Today: polling, one overview a second (each
// coordinator answers for the whole cluster from Redis). A source of job events (server-sent) can
// take its place behind the same interface: the page only subscribes.
import type { Overview } from '../shared/ops-views.js'
import type { Api } from './api.js'

export interface SourceListener {
  data(o: Overview): void
  error(err: Error): void
}

export interface Source {
  start(listener: SourceListener): void
  stop(): void
  /** Ask again now (a new key was given). */
  refresh(): void
}

export function pollingSource(api: Api, intervalMs = 1_000): Source {
  let timer: ReturnType<typeof setTimeout> | undefined
  let aborter: AbortController | undefined
  let listener: SourceListener | undefined

  const tick = async (): Promise<void> => {
    clearTimeout(timer)
    aborter?.abort()
    const a = new AbortController()
    aborter = a
    try {
      const o = await api.overview(a.signal)
      if (!a.signal.aborted) listener?.data(o)
    } catch (err) {
      if (!a.signal.aborted) listener?.error(err as Error)
    }
    if (!a.signal.aborted && listener !== undefined) timer = setTimeout(() => void tick(), intervalMs)
  }

  return {
    start(l) {
      listener = l
      void tick()
    },
    stop() {
      listener = undefined
      clearTimeout(timer)
      aborter?.abort()
    },
    refresh() {
      if (listener !== undefined) void tick()
    },
  }
}
