// What `redisWaitReplicas: 1` costs a result's acceptance on a Redis Cluster: sequential SUBMITs
// through the store on a private cluster (3 primaries, 3 replicas), without and with WAIT, in
// alternating rounds on fresh prefixes. `node dist/bench/redis-wait.js [--results N] [--rounds N]`.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createStore, resolveTuning, type Store } from '../coordinator/index.js'
import { connectRedis, parseRedisTarget } from '../coordinator/redis-connection.js'
import { ensureBinaries, findBinary } from '../scripts/install-packages.js'
import { startRedisCluster } from '../scripts/redis-cluster.js'
import { median, round } from './stats.js'

const { values } = parseArgs({
  options: { results: { type: 'string', default: '400' }, rounds: { type: 'string', default: '3' } },
})
const RESULTS = Math.max(1, Math.min(10_000, Number(values.results)))
const ROUNDS = Math.max(1, Math.min(20, Number(values.rounds)))
const tuning = resolveTuning()
const RULES = {
  ...tuning,
  replicaSpreadMs: 0,
  leaseCapBase: 10_000,
  leaseCapMax: 10_000,
  workRequestBurst: 10_000,
  workRequestsPerSecond: 10_000,
}

/** Leases `RESULTS` replicas of a fresh job to one worker, then submits them one after another: ms each. */
async function round1(store: Store): Promise<number> {
  await store.vouch(['w'])
  const job = { id: 'j', type: 'primes', version: 1, params: {}, quorum: 1, maxReplicas: 4 }
  const more = { minCredibility: 0.99, spotCheckRate: 0, priority: 0, owner: 'o' }
  await store.createJob({ ...job, ...more }, 1, { units: 0, limit: null })
  await store.setUnitsTotal('j', RESULTS, 10)
  await store.addUnits(
    'j',
    1,
    Array.from({ length: RESULTS }, (_, index) => ({ index, input: {} })),
    1,
  )
  const leased = []
  for (let k = 0; leased.length < RESULTS; k++) {
    const g = await store.work('w', 500, ['primes@1'], undefined, RULES, 2 + k, {
      value: `n${k}`,
      ttlMs: 60_000,
    })
    if (g.leased.length === 0) throw new Error(`leased ${leased.length} of ${RESULTS}: ${g.status}`)
    leased.push(...g.leased)
  }
  const output = new Uint8Array(32)
  const t0 = process.hrtime.bigint()
  for (const l of leased) {
    const [r] = await store.submitMany(
      [{ replicaId: l.replicaId, worker: 'w', unitId: l.unitId, digest: 'd', output, computeMs: 1 }],
      100,
    )
    if (r?.status !== 'accepted') throw new Error(`result not accepted: ${JSON.stringify(r)}`)
  }
  return Number(process.hrtime.bigint() - t0) / 1e6 / leased.length
}

const dir = await mkdtemp(join(tmpdir(), 'cohort-bench-'))
const log = (line: string) => void (process.env['COHORT_BENCH_LOG'] && console.error(line))
const binaries = await ensureBinaries(['redis-server'], log)
const cli = findBinary('redis-cli')
if (cli === undefined) throw new Error('redis-cli not found (Debian package redis-tools)')
const cluster = await startRedisCluster({ binary: binaries['redis-server'], cliBinary: cli, dir, log })
const redis = connectRedis(parseRedisTarget(cluster.url), {})
try {
  const ms: Record<0 | 1, number[]> = { 0: [], 1: [] }
  for (let r = 0; r < ROUNDS; r++)
    for (const waitReplicas of [0, 1] as const) {
      const prefix = `{bench-${r}-${waitReplicas}}:`
      ms[waitReplicas].push(await round1(createStore({ redis, prefix, waitReplicas, waitTimeoutMs: 1000 })))
    }
  console.log(`| redisWaitReplicas | ms per accepted result (median of ${ROUNDS} rounds of ${RESULTS}) |`)
  console.log('| --- | --- |')
  for (const w of [0, 1] as const) console.log(`| ${w} | ${round(median(ms[w]), 3)} |`)
} finally {
  redis.disconnect()
  await cluster.stop()
  await rm(dir, { recursive: true, force: true })
}
