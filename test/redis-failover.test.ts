// A primary failover mid-job: a job runs on a Redis Cluster (3 primaries, 3 replicas); once some of
// its units are validated, the primary serving the deployment's slot is killed (SIGKILL). Its replica
// takes over, the coordinator and the workers go on, and the job completes with the right result:
// no unit lost, no result accepted twice, every unit agreed by its quorum of distinct workers.
import test from 'ava'
import { Redis } from 'ioredis'
import { connectRedis, parseRedisTarget } from '../coordinator/redis-connection.js'
import { startCluster, waitForJob, waitUntil } from './helpers/cluster.js'
import { startRedisClusterServices } from './helpers/redis-cluster.js'

/** PRIMES below 20,000,000. */
const COUNT = 1_270_607

// Each variant on a cluster of its own (a failed-over shard has no replica left), one after another.
for (const waitReplicas of [0, 1]) {
  const how = waitReplicas === 0 ? '' : ' (with WAIT for a replica, which the promoted primary lacks)'
  test.serial(`a primary failover mid-job loses no unit and accepts no result twice${how}`, async (t) => {
    const { services, redis: rc } = await startRedisClusterServices()
    t.teardown(() => services.stop())
    // After the failover the slot's new primary has no replica: each WAIT then lasts its timeout.
    const tuning = { redisWaitReplicas: waitReplicas, redisWaitTimeoutMs: 100 }
    const c = await startCluster({ services, tuning })
    t.teardown(() => c.stop())
    for (let i = 0; i < 3; i++) await c.addWorker()
    const job = await c.api.submit({ type: 'primes', params: { to: 20_000_000, unitSize: 250_000 } })

    // Mid-job: some units validated, not all.
    await waitUntil(
      'some units validated',
      async () => (await c.api.job(job.id)).units.validated >= 5,
      120_000,
    )
    const first = new Redis({ port: rc.nodes[0]?.port ?? 0, host: '127.0.0.1' })
    const slot = Number(await first.call('CLUSTER', 'KEYSLOT', c.redisPrefix))
    first.disconnect()
    const primary = await rc.primaryOf(slot)
    const before = await c.api.job(job.id)
    t.true(before.units.validated < before.units.total, 'the job is still running when its primary dies')
    await primary.process.kill('SIGKILL')
    t.log(
      `killed primary :${primary.port} of slot ${slot} at ${before.units.validated}/${before.units.total} units`,
    )

    // Its replica is promoted (the cluster's own failover) and serves the slot.
    await waitUntil(
      'a replica promoted',
      async () => (await rc.primaryOf(slot).catch(() => primary)) !== primary,
      60_000,
    )

    const done = await waitForJob(c.api, job.id, 180_000)
    t.is(done.state, 'completed')
    t.like((await c.api.result(job.id)).result, { count: COUNT })
    t.is(done.units.validated, done.units.total, 'no unit lost, none counted twice')

    // Every unit: validated, its accepted results agree with its canonical digest, each from a distinct
    // worker, at least the quorum of them; every worker credited exactly once per accepted result.
    const redis = connectRedis(parseRedisTarget(services.redisUrl), {})
    t.teardown(() => redis.disconnect())
    const p = c.redisPrefix
    let accepted = 0
    for (let i = 0; i < done.units.total; i++) {
      const uid = `${job.id}:${i}`
      const [state, digest, seq] = await redis.hmget(`${p}unit:${uid}`, 'state', 'digest', 'replicaSeq')
      t.is(state, 'validated', `unit ${i} validated`)
      const replicas = await Promise.all(
        Array.from({ length: Number(seq) }, (_, r) =>
          redis.hmget(`${p}replica:${uid}:r${r + 1}`, 'judged', 'digest', 'worker'),
        ),
      )
      const valid = replicas.filter(([judged]) => judged === 'valid')
      t.true(
        valid.every(([, d]) => d === digest),
        `unit ${i}: accepted results agree with its result`,
      )
      const workers = new Set(valid.map(([, , w]) => w))
      t.is(workers.size, valid.length, `unit ${i}: no worker's result accepted twice`)
      t.true(valid.length >= 2, `unit ${i}: agreed by its quorum (${valid.length})`)
      accepted += valid.length
    }
    let credited = 0
    for (const w of c.workers) credited += (await c.coordinators[0]!.store.workerStats(w.identity.id)).valid
    t.is(credited, accepted, 'each accepted result credited once')
  })
}
