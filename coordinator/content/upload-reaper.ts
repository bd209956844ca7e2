// Deletes expired uploads: every `intervalMs` it ends the holds whose retention has passed and
// deletes content no one holds any more (see uploads.ts). Several coordinators may run it at once.
import { errorFields, type Logger } from '../../shared/index.js'
import type { Uploads } from './uploads.js'

export interface UploadReaperInit {
  uploads: Uploads
  intervalMs: number
  log: Logger
}

export interface UploadReaper {
  start(): void
  stop(): Promise<void>
}

/** Holds ended per script call; a run repeats while a call finds this many. */
const BATCH = 100

export function createUploadReaper(init: UploadReaperInit): UploadReaper {
  const { uploads, log } = init
  let timer: ReturnType<typeof setInterval> | undefined
  let running: Promise<void> | undefined
  let stopped = false

  const run = async (): Promise<void> => {
    for (;;) {
      const { ended, deleted } = await uploads.expire(Date.now(), BATCH)
      if (deleted > 0) log.info('expired uploads deleted', { ended, deleted })
      if (ended < BATCH || stopped) return
    }
  }

  return {
    start() {
      timer = setInterval(() => {
        if (running !== undefined) return
        running = run()
          .catch((err: unknown) => log.warn('upload expiry failed', errorFields(err)))
          .finally(() => {
            running = undefined
          })
      }, init.intervalMs)
    },
    async stop() {
      stopped = true
      clearInterval(timer)
      await running
    },
  }
}
