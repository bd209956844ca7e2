// The store's contract, exercised directly, on a single private redis-server and on a private Redis
// Cluster (3 primaries, 3 replicas): jobs, units, leases (work, renew, release, transfer, expire),
// results, decisions at quorum, completion, cancellation and refusals. On the cluster every key of
// the deployment must lie in its prefix's slot, on one primary. One whole job runs end to end on the
// cluster too (coordinator and workers).
import test, { type ExecutionContext } from 'ava'
import { Redis } from 'ioredis'
import { createStore, resolveTuning, type Store } from '../coordinator/index.js'
import { connectRedis, parseRedisTarget } from '../coordinator/redis-connection.js'
import type { LeaseRules, NewJob } from '../coordinator/store/store.js'
import { trustParamsOf } from '../coordinator/trust-params.js'
import { startCluster, waitForJob } from './helpers/cluster.js'
import { startRedisClusterServices, type RedisClusterServices } from './helpers/redis-cluster.js'
import { startTestServices, uniquePrefix, type TestServices } from './helpers/services.js'

let single: TestServices | undefined
let cluster: RedisClusterServices | undefined
const connections: Redis[] = []

test.before(async () => {
  ;[single, cluster] = await Promise.all([
    startTestServices({ websocket: false }),
    startRedisClusterServices(),
  ])
})
test.after.always(async () => {
  for (const c of connections) c.disconnect()
  await Promise.allSettled([single?.stop(), cluster?.services.stop()])
})

type Backend = 'single' | 'cluster'
const BACKENDS: Backend[] = ['single', 'cluster']

/** A store on `backend` under a fresh prefix (tagged on the cluster), and its connection. */
function storeOn(backend: Backend): { store: Store; redis: Redis; prefix: string } {
  const url = backend === 'single' ? single?.redisUrl : cluster?.services.redisUrl
  if (url === undefined) throw new Error('services not started')
  const label = uniquePrefix('st')
  const prefix = backend === 'cluster' ? `{${label}}:` : `${label}:`
  const redis = connectRedis(parseRedisTarget(url), { maxRetriesPerRequest: 3 })
  // A node killed on purpose (the WAIT test) is reported until the client drops it.
  redis.on('error', () => undefined)
  connections.push(redis)
  return { store: createStore({ redis, prefix }), redis, prefix }
}

const tuning = resolveTuning()
const RULES: LeaseRules = { ...tuning, replicaSpreadMs: 0 }
const ADMIT = { units: 0, limit: null }
let seq = 0

async function newJob(store: Store, units: number, quorum = 2, now = 1000): Promise<string> {
  const id = `job${++seq}`
  await store.setTrustParams({ ...trustParamsOf(tuning), spotCheckRate: 0 })
  const job: NewJob = {
    id,
    type: 'primes',
    version: 1,
    params: { from: 0, to: 100 },
    quorum,
    maxReplicas: 6,
    minCredibility: tuning.defaultMinCredibility,
    spotCheckRate: 0,
    priority: 0,
    owner: 'anonymous',
  }
  t_ok(await store.createJob(job, now, ADMIT))
  await store.setUnitsTotal(id, units, 10)
  const inputs = Array.from({ length: units }, (_, index) => ({ index, input: { n: index } }))
  await store.addUnits(id, quorum, inputs, now)
  return id
}

function t_ok(outcome: { created: boolean }): void {
  if (!outcome.created) throw new Error('job not created')
}

let nonce = 0
const work = (store: Store, worker: string, want: number, now: number) =>
  store.work(worker, want, ['primes@1'], undefined, RULES, now, { value: `n${++nonce}`, ttlMs: 60_000 })

const submit = (
  store: Store,
  worker: string,
  replicaId: string,
  unitId: string,
  digest: string,
  now: number,
) =>
  store.submitMany(
    [{ replicaId, worker, unitId, digest, output: new TextEncoder().encode(digest), computeMs: 5 }],
    now,
  )

/** On the cluster: every key under `prefix` is in the prefix's slot, all on the one primary serving it. */
async function oneSlot(t: ExecutionContext, backend: Backend, prefix: string): Promise<void> {
  if (backend !== 'cluster' || cluster === undefined) return
  const first = new Redis({
    port: cluster.redis.nodes.find((n) => !n.process.exited)?.port ?? 0,
    host: '127.0.0.1',
  })
  const slot = Number(await first.call('CLUSTER', 'KEYSLOT', prefix))
  first.disconnect()
  const primary = await cluster.redis.primaryOf(slot)
  let elsewhere = 0
  for (const n of cluster.redis.nodes) {
    if (n === primary || n.process.exited) continue
    const r = new Redis({ port: n.port, host: '127.0.0.1' })
    // A replica answers KEYS for the keys it copies: only the primaries' own keys count here.
    const role = String(await r.call('ROLE'))
    if (role.startsWith('master')) elsewhere += (await r.keys(`${prefix}*`)).length
    r.disconnect()
  }
  const r = new Redis({ port: primary.port, host: '127.0.0.1' })
  const keys = await r.keys(`${prefix}*`)
  const slots = new Set(
    await Promise.all(keys.map(async (k) => Number(await r.call('CLUSTER', 'KEYSLOT', k)))),
  )
  r.disconnect()
  t.true(keys.length > 0, 'the deployment has keys')
  t.deepEqual([...slots], [slot], 'every key in the prefix slot')
  t.is(elsewhere, 0, 'no key on another primary')
}

for (const backend of BACKENDS) {
  test(`${backend}: a job's units are leased, renewed, computed by two workers, decided at quorum and the job completed`, async (t) => {
    const { store, prefix } = storeOn(backend)
    const jobId = await newJob(store, 2)
    // The operator's own hosts: their agreeing results reach the job's credibility at quorum.
    t.is(await store.vouch(['wa', 'wb']), 2)
    t.is((await store.getJob(jobId))?.state, 'queued')
    const a = await work(store, 'wa', 4, 2000)
    const b = await work(store, 'wb', 4, 2000)
    t.is(a.status, 'ok')
    // One replica of each unit to each worker: a unit never goes to one worker twice.
    t.deepEqual(a.leased.map((l) => l.unitId).sort(), [`${jobId}:0`, `${jobId}:1`])
    t.deepEqual(b.leased.map((l) => l.unitId).sort(), [`${jobId}:0`, `${jobId}:1`])
    t.is((await store.getJob(jobId))?.state, 'running')
    const renewed = await store.renew(
      'wa',
      a.leased.map((l) => l.replicaId),
      RULES,
      3000,
    )
    t.deepEqual(renewed.lost, [])
    t.true(Object.values(renewed.expiresAt).every((at) => at > 3000))
    for (const [w, grant] of [
      ['wa', a],
      ['wb', b],
    ] as const)
      for (const l of grant.leased) {
        const [s] = await submit(store, w, l.replicaId, l.unitId, `d${l.unitId}`, 4000)
        t.is(s?.status, 'accepted')
      }
    for (const unit of [0, 1]) {
      const uid = `${jobId}:${unit}`
      const results = await store.unitResults(uid)
      t.is(results.length, 2)
      const outcome = await store.decide(
        uid,
        2,
        [{ digest: `d${uid}`, replicaIds: results.map((r) => r.replicaId) }],
        0.5,
        5000,
      )
      t.is(outcome.verdict, 'validated')
      t.is(
        (
          await store.decide(
            uid,
            2,
            [{ digest: `d${uid}`, replicaIds: results.map((r) => r.replicaId) }],
            0.5,
            5000,
          )
        ).verdict,
        'settled',
        'decided once',
      )
    }
    const job = await store.getJob(jobId)
    t.is(job?.unitsValidated, 2)
    t.deepEqual(
      (await store.canonicalOutputs(jobId, 2)).map((b) => b?.toString()),
      [`d${jobId}:0`, `d${jobId}:1`],
    )
    t.true(await store.completeJob(jobId, { ok: true }, job?.generation ?? 0, 6000))
    t.false(await store.completeJob(jobId, { ok: true }, job?.generation ?? 0, 6000), 'completed once')
    t.is((await store.getJob(jobId))?.state, 'completed')
    t.deepEqual(await store.endedJobIds(10), [jobId])
    t.is((await store.workerStats('wa')).valid, 2)
    await oneSlot(t, backend, prefix)
  })

  test(`${backend}: leases handed back, transferred and expired go back to the queue; a lost lease is reported on renewal`, async (t) => {
    const { store, prefix } = storeOn(backend)
    const jobId = await newJob(store, 1, 1)
    const a = await work(store, 'wa', 1, 2000)
    const rid = a.leased[0]?.replicaId ?? ''
    t.is(await store.release('wa', [rid], RULES.maxWorkersPerUnit, 2100), 1)
    t.is((await store.workerStats('wa')).released, 1)
    t.deepEqual((await store.renew('wa', [rid], RULES, 2200)).lost, [rid])
    // The replacement replica (held a while for workers with standing) goes to another worker.
    const b = await work(store, 'wb', 1, 100_000)
    t.is(b.leased.length, 1)
    const rid2 = b.leased[0]?.replicaId ?? ''
    t.not(rid2, rid)
    const moved = await store.transfer('wb', 'wc', [rid2], RULES.leaseMs, RULES.maxWorkersPerUnit, 100_100)
    t.deepEqual(
      moved.moved.map((m) => m.replicaId),
      [rid2],
    )
    t.is((await store.replicaState(rid2))['worker'], 'wc')
    const past = 100_100 + RULES.leaseMs * 100
    t.is(await store.expire(past, 100, RULES.maxWorkersPerUnit), 1)
    t.is((await store.workerStats('wc')).expired, 1)
    const d = await work(store, 'wd', 1, past + RULES.reissueHoldMs * 2)
    t.is(d.leased[0]?.unitId, `${jobId}:0`, 'the unit is leased again')
    await oneSlot(t, backend, prefix)
  })

  test(`${backend}: refusals: another worker's replica, a replayed nonce, a cancelled job, an owner over its limit`, async (t) => {
    const { store } = storeOn(backend)
    const jobId = await newJob(store, 1, 2)
    const a = await work(store, 'wa', 1, 2000)
    const l = a.leased[0]
    if (l === undefined) return t.fail('nothing leased')
    t.is((await submit(store, 'wx', l.replicaId, l.unitId, 'd', 2100))[0]?.status, 'rejected')
    t.is((await submit(store, 'wa', l.replicaId, l.unitId, 'd', 2100))[0]?.status, 'accepted')
    t.is((await submit(store, 'wa', l.replicaId, l.unitId, 'd', 2100))[0]?.status, 'duplicate')
    t.true(await store.useNonce('wa', 'n-1', 60_000))
    t.false(await store.useNonce('wa', 'n-1', 60_000), 'a replayed nonce is refused')
    const b = await work(store, 'wb', 1, 2000)
    t.is(await store.cancel(jobId, 2200), 'running')
    t.is(await store.cancel(jobId, 2200), 'cancelled', 'cancelled once: the second call finds it cancelled')
    const late = await submit(store, 'wb', b.leased[0]?.replicaId ?? '', `${jobId}:0`, 'd', 2300)
    t.deepEqual(late[0], { status: 'rejected', detail: 'job is cancelled' })
    t.is((await work(store, 'wc', 1, 3000)).leased.length, 0, 'a cancelled job leases nothing')
    const big: NewJob = { ...(await store.getJob(jobId))!, id: `${jobId}-big` }
    t.deepEqual(await store.createJob(big, 4000, { units: 10, limit: 5 }), { created: false, inFlight: 0 })
  })
}

test.serial(
  'cluster: with redisWaitReplicas an accepted result is on the replica when reported; a WAIT short of replicas is reported',
  async (t) => {
    if (cluster === undefined) return t.fail('no cluster')
    const url = cluster.services.redisUrl
    const prefix = `{${uniquePrefix('wait')}}:`
    const shorts: [number, number][] = []
    const redis = connectRedis(parseRedisTarget(url), { maxRetriesPerRequest: 3 })
    redis.on('error', () => undefined)
    connections.push(redis)
    const onWaitShort = (acked: number, wanted: number) => void shorts.push([acked, wanted])
    const store = createStore({ redis, prefix, waitReplicas: 1, waitTimeoutMs: 10_000, onWaitShort })
    await store.vouch(['wa'])
    const jobId = await newJob(store, 2, 1)
    const [l0, l1] = (await work(store, 'wa', 2, 2000)).leased
    if (l0 === undefined || l1 === undefined) return t.fail('nothing leased')
    t.is((await submit(store, 'wa', l0.replicaId, l0.unitId, 'd0', 2100))[0]?.status, 'accepted')
    t.deepEqual(shorts, [])
    const first = new Redis({ port: cluster.redis.nodes[0]?.port ?? 0, host: '127.0.0.1' })
    const slot = Number(await first.call('CLUSTER', 'KEYSLOT', prefix))
    first.disconnect()
    const primary = await cluster.redis.primaryOf(slot)
    const [replica] = await cluster.redis.replicasOf(primary)
    if (replica === undefined) return t.fail('no replica')
    const onReplica = new Redis({ port: replica.port, host: '127.0.0.1' })
    await onReplica.call('READONLY')
    t.is(
      await onReplica.hget(`${prefix}replica:${l0.replicaId}`, 'state'),
      'done',
      'the replica has the result',
    )
    onReplica.disconnect()
    // Without its replica the primary still accepts writes; the WAIT says so.
    await replica.process.kill('SIGKILL')
    const quick = createStore({ redis, prefix, waitReplicas: 1, waitTimeoutMs: 100, onWaitShort })
    t.is((await submit(quick, 'wa', l1.replicaId, l1.unitId, 'd1', 2200))[0]?.status, 'accepted')
    t.deepEqual(shorts, [[0, 1]])
    t.is((await quick.getJob(jobId))?.state, 'running')
  },
)

test('cluster: a whole job runs end to end on the Redis Cluster (coordinator and two workers)', async (t) => {
  if (cluster === undefined) return t.fail('no cluster')
  const c = await startCluster({ services: cluster.services })
  try {
    t.regex(c.redisPrefix, /^\{.+\}:$/)
    await c.addWorker({ threads: 2 })
    await c.addWorker({ threads: 2 })
    const job = await c.api.submit({ type: 'primes', params: { to: 2_000_000, unitSize: 100_000 } })
    // The job's event stream (a blocking XREAD on a connection of its own) follows it to the end.
    const followed = (async () => {
      const states: string[] = []
      for await (const e of c.api.events(job.id)) {
        if (e.type !== 'state') continue
        states.push(e.data.state)
        if (e.data.state === 'completed') break
      }
      return states
    })()
    t.is((await waitForJob(c.api, job.id)).state, 'completed')
    t.deepEqual(await followed, ['queued', 'running', 'completed'])
    t.like((await c.api.result(job.id)).result, { count: 148_933 })
    await oneSlot(t, 'cluster', c.redisPrefix)
    // Every test here uses a tagged prefix: a key without a tag anywhere in the cluster is one the
    // coordinator wrote without its prefix.
    const untagged: string[] = []
    for (const n of cluster.redis.nodes) {
      if (n.process.exited) continue
      const r = new Redis({ port: n.port, host: '127.0.0.1' })
      if (String(await r.call('ROLE')).startsWith('master'))
        untagged.push(...(await r.keys('*')).filter((k) => !/^\{[^}]+\}:/.test(k)))
      r.disconnect()
    }
    t.deepEqual(untagged, [])
  } finally {
    await c.stop()
  }
})
