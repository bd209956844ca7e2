// Core: jobs submitted over HTTP run on worker daemons and come back as quorum-validated results.
import test from 'ava'
import { Redis } from 'ioredis'
import { encode, sha256Hex } from '../shared/index.js'
import type { Runner } from '../worker/index.js'
import { jobUnitResults, startCluster, waitForJob } from './helpers/cluster.js'
import { useServices } from './helpers/services.js'

const services = useServices(test)

/** The digest each unit was validated with, from Redis. */
async function canonicalDigests(redisUrl: string, prefix: string, jobId: string, total: number) {
  const redis = new Redis(redisUrl)
  try {
    return await Promise.all(
      Array.from({ length: total }, (_, i) => redis.hget(`${prefix}unit:${jobId}:${i}`, 'digest')),
    )
  } finally {
    redis.disconnect()
  }
}

test('core - primes and nqueens on two worker daemons give the published answers, each unit agreed by two distinct workers', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const [a, b] = [await cluster.addWorker(), await cluster.addWorker()]
  const primes = await cluster.api.submit({ type: 'primes', params: { to: 10_000_000, unitSize: 1_000_000 } })
  const queens = await cluster.api.submit({ type: 'nqueens', params: { n: 10 } })
  const [pj, qj] = [await waitForJob(cluster.api, primes.id), await waitForJob(cluster.api, queens.id)]
  t.is(pj.state, 'completed')
  t.is(qj.state, 'completed')
  t.like((await cluster.api.result(primes.id)).result, { count: 664_579 })
  t.like((await cluster.api.result(queens.id)).result, { solutions: 724 })

  for (const job of [pj, qj]) {
    t.is(job.units.validated, job.units.total)
    const results = await jobUnitResults(cluster, job.id, job.units.total)
    const canonical = await canonicalDigests(
      services().redisUrl,
      cluster.redisPrefix,
      job.id,
      job.units.total,
    )
    results.forEach((rs, i) => {
      const agreeing = rs.filter((r) => r.digest === canonical[i])
      t.true(
        new Set(agreeing.map((r) => r.worker)).size >= 2,
        `unit ${i} of ${job.type} agreed by two distinct workers`,
      )
    })
  }
  // Both daemons took part, and their identities are the ones the coordinator recorded.
  t.true(a.daemon.stats.resultsAccepted > 0 && b.daemon.stats.resultsAccepted > 0)
  const store = cluster.coordinators[0]!.store
  t.true((await store.workerStats(a.identity.id)).valid > 0)
  t.true((await store.workerStats(b.identity.id)).valid > 0)
})

/** A runner that returns a wrong (but well-formed, correctly digested) answer for every unit. */
function lying(base: Runner): Runner {
  return {
    threads: base.threads,
    kinds: base.kinds,
    close: () => base.close(),
    async run(task, signal) {
      const real = await base.run(task, signal)
      const output = encode({ count: 1 })
      return { ...real, output, digest: await sha256Hex(output) }
    },
  }
}

test('validator - a worker returning wrong results causes extra replicas and the answer is still right', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const liar = await cluster.addWorker({ wrap: lying })
  await cluster.addWorker()
  await cluster.addWorker()
  const job = await cluster.api.submit({ type: 'primes', params: { to: 2_000_000, unitSize: 100_000 } })
  const done = await waitForJob(cluster.api, job.id)
  t.is(done.state, 'completed')
  t.like((await cluster.api.result(job.id)).result, { count: 148_933 })
  t.true(liar.daemon.stats.resultsAccepted > 0, 'the liar submitted results')
  t.true(done.extraReplicas > 0, 'disagreement issued extra replicas')
  const stats = await cluster.coordinators[0]!.store.workerStats(liar.identity.id)
  t.is(stats.valid, 0)
  t.true(stats.invalid > 0)
  t.true(cluster.coordinators[0]!.counters.unitsReissued > 0)
})

test('validator - a unit whose results never reach a quorum fails the job loudly', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  // Two liars that disagree with the truth but agree with each other would win a quorum of 2: that is
  // the known limit of redundancy. Here each liar answers differently, so no quorum is possible.
  let n = 0
  const differentLies = (base: Runner): Runner => {
    const mine = ++n
    return {
      threads: base.threads,
      kinds: base.kinds,
      close: () => base.close(),
      async run(task, signal) {
        const real = await base.run(task, signal)
        const output = encode({ count: 1000 + mine })
        return { ...real, output, digest: await sha256Hex(output) }
      },
    }
  }
  await cluster.addWorker({ wrap: differentLies })
  await cluster.addWorker({ wrap: differentLies })
  await cluster.addWorker({ wrap: differentLies })
  const job = await cluster.api.submit({
    type: 'primes',
    params: { to: 10_000, unitSize: 10_000 },
    redundancy: { quorum: 2, maxReplicas: 3 },
  })
  const done = await waitForJob(cluster.api, job.id)
  t.is(done.state, 'failed')
  t.regex(done.error ?? '', /no quorum of 2 agreeing results after 3 replicas/)
  t.is(done.units.failed, 1)
})

test('validator - quorum 1 accepts the first result', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  await cluster.addWorker({ threads: 2 })
  const job = await cluster.api.submit({
    type: 'nqueens',
    params: { n: 8 },
    redundancy: { quorum: 1, maxReplicas: 1 },
  })
  const done = await waitForJob(cluster.api, job.id)
  t.is(done.state, 'completed')
  t.like((await cluster.api.result(job.id)).result, { solutions: 92 })
})
