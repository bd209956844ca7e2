// An opt-in WAIT after the writes that must not be lost to a failover (a result's acceptance, a
// job's completion): Redis replicates asynchronously, so a primary that dies right after a write may
// take it with it. WAIT holds the reply until `replicas` replicas have the connection's writes, or
// `timeoutMs` passes; it narrows that window, it does not close it (docs/redis-cluster.md).
import { Cluster, type Redis } from 'ioredis'

export interface ReplicaWaitInit {
  redis: Redis
  /** Key prefix of the deployment: on a cluster, WAIT goes to the primary serving its slot. */
  prefix: string
  /** Replicas to wait for (0: no WAIT). */
  replicas: number
  timeoutMs: number
  /** Told when fewer replicas than asked acknowledged in time (the write stands, less safely). */
  onShort?: (acked: number, wanted: number) => void
}

/** A function that waits for the replicas of the writes made so far; undefined with 0 replicas. */
export function createReplicaWait(init: ReplicaWaitInit): (() => Promise<number>) | undefined {
  if (init.replicas <= 0) return undefined
  const { redis, replicas, timeoutMs } = init
  let slot: number | undefined
  /** The connection the deployment's writes went through: on a cluster, its slot's primary's. */
  const connection = async (): Promise<Redis> => {
    if (!(redis instanceof Cluster)) return redis
    const cluster = redis as Cluster
    slot ??= Number(await cluster.call('CLUSTER', 'KEYSLOT', init.prefix))
    const key = cluster.slots[slot]?.[0]
    const node = cluster.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === key)
    if (node === undefined) throw new Error(`no connection to the primary of slot ${slot}`)
    return node
  }
  return async () => {
    const acked = await (await connection()).wait(replicas, timeoutMs)
    if (acked < replicas) init.onShort?.(acked, replicas)
    return acked
  }
}
