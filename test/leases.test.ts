// Leases: renewal, lost grants taken back at the next request, and expiry.
import test, { type ExecutionContext } from 'ava'
import { decode, encode, openUnit, parseUnitPayload, seal, subjectsFor } from '../shared/index.js'
import { startCluster, waitUntil, type Cluster } from './helpers/cluster.js'
import { useServices } from './helpers/services.js'
import { rawVolunteer } from './helpers/volunteer.js'

const services = useServices(test)

const actAsWorker = (t: ExecutionContext, cluster: Cluster) => rawVolunteer(t, cluster, { timeoutMs: 3_000 })

test('leases - a grant whose reply was lost is taken back at the next request, not at its deadline', async (t) => {
  const cluster = await startCluster({ services: services(), tuning: { leaseMs: 600_000 } })
  t.teardown(() => cluster.stop())
  const w = await actAsWorker(t, cluster)
  await cluster.api.submit({ type: 'primes', params: { to: 100_000, unitSize: 10_000 } })
  let grant = await w.client.requestWork(2, ['primes@1'], [])
  await waitUntil('units planned and granted', async () => {
    if (grant.units.length > 0) return true
    grant = await w.client.requestWork(2, ['primes@1'], [])
    return grant.units.length > 0
  })
  const lost = await Promise.all(grant.units.map(async (u) => parseUnitPayload(await openUnit(u)).replicaId))
  // The worker never saw that grant: it asks again holding nothing.
  const next = await w.client.requestWork(1, ['primes@1'], [])
  t.is(next.units.length, 1)
  const store = cluster.coordinators[0]!.store
  for (const rid of lost) t.is((await store.replicaState(rid))['state'], 'released')
  t.is(cluster.coordinators[0]!.counters.leasesReleased, lost.length)
  // What it does hold stays leased.
  const keep = parseUnitPayload(await openUnit(next.units[0]!)).replicaId
  await w.client.requestWork(1, ['primes@1'], [keep])
  t.is((await store.replicaState(keep))['state'], 'leased')
})

test('leases - renewal extends a held lease and reports lost ones', async (t) => {
  const cluster = await startCluster({ services: services(), tuning: { leaseMs: 60_000 } })
  t.teardown(() => cluster.stop())
  const w = await actAsWorker(t, cluster)
  await cluster.api.submit({ type: 'primes', params: { to: 100_000, unitSize: 10_000 } })
  let rid = ''
  await waitUntil('a unit granted', async () => {
    const g = await w.client.requestWork(1, ['primes@1'], [])
    if (g.units[0] !== undefined) rid = parseUnitPayload(await openUnit(g.units[0])).replicaId
    return rid !== ''
  })
  const before = Number((await cluster.coordinators[0]!.store.replicaState(rid))['deadline'])
  const renewed = await w.client.renew([rid, `${rid.slice(0, -1)}99`])
  t.true((renewed.expiresAt[rid] ?? 0) >= before)
  t.deepEqual(renewed.lost, [`${rid.slice(0, -1)}99`])
})

test('leases - an expired lease is reissued to another worker', async (t) => {
  const cluster = await startCluster({ services: services(), tuning: { leaseMs: 600 } })
  t.teardown(() => cluster.stop())
  const w = await actAsWorker(t, cluster)
  const job = await cluster.api.submit({
    type: 'primes',
    params: { to: 10_000, unitSize: 10_000 },
    redundancy: { quorum: 1, maxReplicas: 1 },
  })
  let rid = ''
  await waitUntil('the only unit granted', async () => {
    const g = await w.client.requestWork(1, ['primes@1'], [])
    if (g.units[0] !== undefined) rid = parseUnitPayload(await openUnit(g.units[0])).replicaId
    return rid !== ''
  })
  const store = cluster.coordinators[0]!.store
  await waitUntil('the lease expired', async () => (await store.replicaState(rid))['state'] === 'expired')
  await cluster.addWorker()
  await waitUntil('job completed', async () => (await cluster.api.job(job.id)).state === 'completed')
  t.like((await cluster.api.result(job.id)).result, { count: 1229 })
})

test('leases - a signed request replayed by someone who saw it is refused', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const { identity, nats } = await rawVolunteer(t, cluster)
  const envelope = await seal(
    'lease.release',
    {
      type: 'lease.release',
      v: 1,
      worker: identity.id,
      at: Date.now(),
      nonce: 'n-1',
      replicaIds: [],
      reason: 'x',
    },
    identity,
  )
  const subject = subjectsFor(cluster.subjectPrefix).leaseRelease
  const first = decode((await nats.request(subject, encode(envelope), { timeout: 3_000 })).data)
  t.like(first, { type: 'lease.released', released: 0 })
  const again = decode((await nats.request(subject, encode(envelope), { timeout: 3_000 })).data)
  t.like(again, { type: 'error', code: 'bad-request' })
  t.regex((again as { message: string }).message, /replayed/)
})
