// Deletes expired uploads: every `intervalMs` it ends the holds whose retention has passed and
// deletes content no one holds any more (see uploads.ts). Several coordinators may run it at once.
import { errorFields, type Logger } from '../../shared/index.js'
import { every, type Periodic } from '../periodic.js'
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
  let periodic: Periodic | undefined
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
      periodic = every(init.intervalMs, run, (err) => log.warn('upload expiry failed', errorFields(err)))
    },
    async stop() {
      stopped = true
      await periodic?.stop()
    },
  }
}
