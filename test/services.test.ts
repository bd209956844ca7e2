// Private Redis + NATS: free ports, PING, request/reply, WebSocket port, NATS restart, clean stop.
import test, { type ExecutionContext } from 'ava'
import { Redis } from 'ioredis'
import { connect } from '@nats-io/transport-node'
import { AuthorizationError, type NatsConnection } from '@nats-io/nats-core'
import { createAccount } from '@nats-io/nkeys'
import { connect as tcpConnect } from 'node:net'
import { servicesOptionsFromEnv, startServices } from '../scripts/services.js'
import { announceSubject, generateIdentity, subjectsFor } from '../shared/index.js'
import { asCoordinator, startTestServices, uniquePrefix, type TestServices } from './helpers/services.js'
import { connectVolunteer, issuedAccess } from './helpers/volunteer.js'

let services: TestServices
test.before(async () => {
  services = await startTestServices()
})
test.after.always(async () => {
  await services?.stop()
})

function portOf(url: string): number {
  return Number(new URL(url).port)
}

function tcpAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ port, host: '127.0.0.1' })
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function natsRoundTrip(url: string, subject: string): Promise<string> {
  const nc = await connect({ ...asCoordinator(services), servers: url })
  try {
    const sub = nc.subscribe(subject)
    void (async () => {
      for await (const msg of sub) msg.respond(`echo:${msg.string()}`)
    })()
    await nc.flush()
    const reply = await nc.request(subject, 'hello', { timeout: 2000 })
    return reply.string()
  } finally {
    await nc.close()
  }
}

test.serial('servers listen on free loopback ports, never the defaults', (t) => {
  const redisPort = portOf(services.redisUrl)
  const natsPort = portOf(services.natsUrl)
  t.true(redisPort > 0 && redisPort !== 6379)
  t.true(natsPort > 0 && natsPort !== 4222)
  t.is(new URL(services.redisUrl).hostname, '127.0.0.1')
  t.is(new URL(services.natsUrl).hostname, '127.0.0.1')
  t.truthy(services.natsWsUrl)
  t.truthy(services.natsMonitorUrl)
  t.true(isAlive(services.pids.redis ?? -1))
  t.true(isAlive(services.pids.nats ?? -1))
})

test.serial('Redis answers PING through ioredis', async (t) => {
  const redis = new Redis(services.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 })
  try {
    await redis.connect()
    t.is(await redis.ping(), 'PONG')
    const key = `${uniquePrefix('svc')}:k`
    await redis.set(key, 'v')
    t.is(await redis.get(key), 'v')
  } finally {
    redis.disconnect()
  }
})

test.serial('NATS request/reply round trip', async (t) => {
  t.is(await natsRoundTrip(services.natsUrl, `${uniquePrefix('svc')}.echo`), 'echo:hello')
})

test.serial('the NATS WebSocket port accepts TCP connections', async (t) => {
  t.true(await tcpAccepts(portOf(services.natsWsUrl ?? 'ws://127.0.0.1:0')))
})

test.serial('restartNats keeps the same URL working for a new connection', async (t) => {
  const before = services.pids.nats ?? -1
  await services.restartNats?.()
  const after = services.pids.nats ?? -1
  t.not(after, before)
  t.false(isAlive(before))
  t.true(isAlive(after))
  t.is(await natsRoundTrip(services.natsUrl, `${uniquePrefix('svc')}.echo`), 'echo:hello')
})

test.serial('killRedis then restartRedis keeps the data (append-only file)', async (t) => {
  const redis = new Redis(services.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 })
  const key = `${uniquePrefix('svc')}:durable`
  try {
    await redis.connect()
    await redis.set(key, 'kept')
  } finally {
    redis.disconnect()
  }
  await services.killRedis?.('SIGTERM')
  await services.restartRedis?.()
  const again = new Redis(services.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 })
  try {
    await again.connect()
    t.is(await again.get(key), 'kept')
  } finally {
    again.disconnect()
  }
})

test.serial('given URLs, startServices uses those servers and starts none', async (t) => {
  const lines: string[] = []
  const external = await startServices({
    dataDir: services.dataDir,
    redisUrl: services.redisUrl,
    natsUrl: services.natsUrl,
    log: (line) => lines.push(line),
  })
  t.is(external.redisUrl, services.redisUrl)
  t.is(external.natsUrl, services.natsUrl)
  t.is(external.natsWsUrl, undefined)
  t.deepEqual({ ...external.pids }, { redis: undefined, nats: undefined })
  t.is(external.killRedis, undefined)
  t.is(external.restartNats, undefined)
  await external.stop()
  t.true(isAlive(services.pids.redis ?? -1))
  t.true(lines.some((line) => line.includes('external Redis')))
})

test.serial('stop() leaves no process behind', async (t) => {
  const pids = [services.pids.redis ?? -1, services.pids.nats ?? -1]
  t.true(pids.every(isAlive))
  await services.stop()
  for (const pid of pids) t.throws(() => process.kill(pid, 0))
})

test('servicesOptionsFromEnv reads only REDIS_URL, NATS_URL and NATS_WS_URL', (t) => {
  t.deepEqual(servicesOptionsFromEnv({}), {})
  t.deepEqual(servicesOptionsFromEnv({ REDIS_URL: ' ', NATS_URL: 'nats://h:1', PATH: '/bin' }), {
    natsUrl: 'nats://h:1',
  })
  t.deepEqual(servicesOptionsFromEnv({ REDIS_URL: 'redis://h:2', NATS_WS_URL: 'ws://h:3' }), {
    redisUrl: 'redis://h:2',
    natsWsUrl: 'ws://h:3',
  })
})

/** The server reports each of `expected` (e.g. `Publish to "x"`) to `nc` as a violation after `act`. */
async function assertViolations(
  t: ExecutionContext,
  nc: NatsConnection,
  act: () => void,
  expected: string[],
): Promise<void> {
  const violations: string[] = []
  const watching = (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'error') violations.push(String(s.error.message))
      if (violations.length >= expected.length) return
    }
  })()
  act()
  await watching
  for (const e of expected)
    t.true(
      violations.some((v) => v.includes(e)),
      `${e} in ${violations.join('; ')}`,
    )
}

test('nats - a connection without credentials, or with a user JWT of another account, is refused', async (t) => {
  const own = await startTestServices({ websocket: false })
  t.teardown(() => own.stop())
  const anonymous = await connect({ servers: own.natsUrl }).then(
    (nc) => nc.close().then(() => 'connected'),
    (err: unknown) => err,
  )
  t.true(anonymous instanceof AuthorizationError, String(anonymous))
  // Credentials issued by an account the server does not know (another deployment's).
  const identity = await generateIdentity(true)
  const stranger = issuedAccess(own, 'cohort')
  const foreign = { ...stranger, accountSeed: new TextDecoder().decode(createAccount().getSeed()) }
  const refused = await connectVolunteer(foreign, identity).then(
    (nc) => nc.close().then(() => 'connected'),
    (err: unknown) => err,
  )
  t.true(refused instanceof AuthorizationError, String(refused))
  const admitted = await connectVolunteer(stranger, identity)
  await admitted.close()
})

test('nats permissions - a volunteer may ask coordinators for work but not read results or speak for them', async (t) => {
  const own = await startTestServices({ websocket: false })
  const coordinator = await connect(asCoordinator(own))
  const identity = await generateIdentity(true)
  const volunteer = await connectVolunteer(issuedAccess(own, 'cohort'), identity)
  t.teardown(async () => {
    await volunteer.close()
    await coordinator.close()
    await own.stop()
  })
  coordinator.subscribe('cohort.v1.work.request', { callback: (_e, m) => void m.respond('granted') })
  await coordinator.flush()
  t.is((await volunteer.request('cohort.v1.work.request', 'x', { timeout: 2000 })).string(), 'granted')

  await assertViolations(
    t,
    volunteer,
    () => {
      volunteer.subscribe('cohort.v1.result.submit', { callback: () => {} })
      volunteer.subscribe('cohort.v1.work.request', { callback: () => {} })
      volunteer.subscribe('_INBOX.>', { callback: () => {} })
      volunteer.subscribe('$JS.API.>', { callback: () => {} })
      // Wake-ups only in the volunteers' queue group, one volunteer per message: no one hears them all.
      volunteer.subscribe('cohort.v1.work.available', { callback: () => {} })
      volunteer.publish('cohort.v1.work.available')
      volunteer.publish('$JS.API.INFO')
      // Another deployment's subjects (another prefix) are not this volunteer's either.
      volunteer.publish('other.v1.work.request')
    },
    [
      'Subscription to "cohort.v1.result.submit"',
      'Subscription to "cohort.v1.work.request"',
      'Subscription to "_INBOX.>"',
      'Subscription to "$JS.API.>"',
      'Subscription to "cohort.v1.work.available"',
      'Publish to "cohort.v1.work.available"',
      'Publish to "$JS.API.INFO"',
      'Publish to "other.v1.work.request"',
    ],
  )
})

test("nats permissions - volunteers request and reply on peer subjects but cannot serve chunks, claims or others' subjects", async (t) => {
  const own = await startTestServices({ websocket: false })
  const coordinator = await connect(asCoordinator(own))
  const [ida, idb] = [await generateIdentity(true), await generateIdentity(true)]
  const access = issuedAccess(own, 'cohort')
  const [a, b] = [await connectVolunteer(access, ida), await connectVolunteer(access, idb)]
  t.teardown(async () => {
    await Promise.all([a.close(), b.close(), coordinator.close()])
    await own.stop()
  })
  // A peer listens on its own subject and answers a request it received (its response permission).
  const inbox = `cohort.v1.peer.to.${ida.id}`
  a.subscribe(inbox, { callback: (_e, m) => void m.respond(`pong ${m.string()}`) })
  // Announcements are sharded: a peer hears any shard (here all of them) and speaks on its own only.
  const heard: string[] = []
  a.subscribe('cohort.v1.peer.announce.>', { callback: (_e, m) => void heard.push(m.string()) })
  await a.flush()
  t.is((await b.request(inbox, 'ping', { timeout: 2000 })).string(), 'pong ping')
  // Volunteers reach the coordinators' chunk and claim services.
  for (const subject of ['cohort.v1.chunk.get', 'cohort.v1.lease.claim'])
    coordinator.subscribe(subject, { callback: (_e, m) => void m.respond('served') })
  await coordinator.flush()
  t.is((await b.request('cohort.v1.chunk.get', 'x', { timeout: 2000 })).string(), 'served')
  t.is((await b.request('cohort.v1.lease.claim', 'x', { timeout: 2000 })).string(), 'served')
  b.publish(announceSubject(subjectsFor('cohort'), idb.id), 'here')
  await b.flush()
  await a.flush()
  t.deepEqual(heard, ['here'])

  // Answering is allowed only to a request received: other inboxes stay closed, and so do other
  // peers' subjects and inboxes.
  const refused = ['cohort.v1.chunk.get', 'cohort.v1.lease.claim', inbox, `_INBOX.${ida.id}.>`]
  await assertViolations(
    t,
    b,
    () => {
      for (const subject of refused) b.subscribe(subject, { callback: () => {} })
      b.publish(`_INBOX.${ida.id}.someone-else`)
    },
    [...refused.map((s) => `Subscription to "${s}"`), `Publish to "_INBOX.${ida.id}.someone-else"`],
  )
})
