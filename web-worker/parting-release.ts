// Handing leases back when the tab goes away. A closing tab runs its `pagehide` handler and nothing
// after it: no signature (WebCrypto is asynchronous) and no reply can be awaited. So a signed
// `lease.release` for every held lease is kept ready, re-signed whenever the held set changes and
// every minute (its timestamp must stay within the coordinator's clock window), and `send()`
// publishes it synchronously; nats.js writes it to the WebSocket in a microtask of the same task.
import type { NatsConnection } from '@nats-io/nats-core'
import { errorFields, LIMITS, type Logger } from '../shared/index.js'
import type { CoordinatorClient, WorkerDaemon } from '../worker/portable.js'

export interface PartingReleaseInit {
  nats: NatsConnection
  /** Seals the release with the volunteer's key. */
  client: CoordinatorClient
  daemon: WorkerDaemon
  /** The `lease.release` subject. */
  subject: string
  log: Logger
  /** Re-sign this often even when nothing changed. Default 60000 ms. */
  refreshMs?: number
}

export interface PartingRelease {
  /** Publish the prepared release now, without awaiting anything. True when something was sent. */
  send(): boolean
  stop(): void
}

const REASON = 'browser tab closed'

export function createPartingRelease(init: PartingReleaseInit): PartingRelease {
  let held: string[] = []
  let ready: { ids: string[]; bytes: Uint8Array } | undefined
  let sealing = false
  let dirty = false

  const reseal = (): void => {
    if (sealing) {
      dirty = true
      return
    }
    sealing = true
    dirty = false
    const ids = held.slice(0, LIMITS.maxReplicaIds)
    init.client
      .sealRelease(ids, REASON)
      .then((bytes) => {
        ready = ids.length === 0 ? undefined : { ids, bytes }
      })
      .catch((err: unknown) => init.log.warn('could not prepare the parting release', errorFields(err)))
      .finally(() => {
        sealing = false
        if (dirty) reseal()
      })
  }

  const onHeld = (ids: string[]): void => {
    if (ids.length === held.length && ids.every((id, i) => id === held[i])) return
    held = ids
    reseal()
  }
  init.daemon.on('held', onHeld)
  const timer = setInterval(() => {
    if (held.length > 0) reseal()
  }, init.refreshMs ?? 60_000)

  return {
    send() {
      if (held.length === 0 || ready === undefined || init.nats.isClosed()) return false
      init.nats.publish(init.subject, ready.bytes)
      init.log.info('handed back leases on leaving', { n: ready.ids.length })
      return true
    },
    stop() {
      clearInterval(timer)
      init.daemon.off('held', onHeld)
    },
  }
}
