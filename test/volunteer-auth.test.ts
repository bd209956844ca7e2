// Volunteer identities and credentials: nobody joins NATS without signing up; a signed-up volunteer
// hears only its own subjects (the eavesdropping attack); sign-up refuses bad signatures, wrong,
// replayed or expired proofs of work and malformed bodies, and limits each address; `cohort worker
// --coordinator` signs up by itself, keeps its credentials and signs up again when they are refused.
import test, { type ExecutionContext } from 'ava'
import { connect } from '@nats-io/transport-node'
import { AuthorizationError, type NatsConnection } from '@nats-io/nats-core'
import { createAccount, createUser } from '@nats-io/nkeys'
import { Redis } from 'ioredis'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { createConnection } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createVolunteerIssuer } from '../coordinator/index.js'
import {
  announceSubject,
  checkPow,
  peerShard,
  PROVIDER_QUEUE,
  wantSubject,
  exportIdentity,
  generateIdentity,
  inboxPrefixFor,
  parseSignupChallenge,
  powPrefix,
  seal,
  signupRequest,
  solvePow,
  subjectsFor,
  toBase64Url,
  type Identity,
  type SignupPayload,
  VOLUNTEER_NATS_LIMITS,
} from '../shared/index.js'
import { credentialFileFor, signUp } from '../worker/index.js'
import { spawnCohort, startCluster, waitForJob, waitUntil, type Cluster } from './helpers/cluster.js'
import { useServices } from './helpers/services.js'
import { rawVolunteer } from './helpers/volunteer.js'

const services = useServices(test, { websocket: false })

interface Problem {
  status: number
  headers: Headers
  body: Record<string, unknown>
}

async function call(url: string, init?: RequestInit): Promise<Problem> {
  const response = await fetch(url, init)
  const text = await response.text()
  return {
    status: response.status,
    headers: response.headers,
    body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>),
  }
}

async function challenge(base: string) {
  const r = await call(`${base}/v1/volunteers/challenge`)
  if (r.status !== 200) throw new Error(`challenge: ${r.status} ${JSON.stringify(r.body)}`)
  return parseSignupChallenge(r.body)
}

interface Attempt {
  identity?: Identity
  /** Signs with this identity instead (a signature by someone else). */
  signer?: Identity
  challenge?: string
  natsKey?: string
  /** Use this nonce instead of solving. */
  pow?: string
  /** Change the request's JSON before it is sent. */
  edit?: (body: Record<string, unknown>) => void
}

/** A sign-up as a client would make it, with the parts an attacker may change. */
async function signUpRaw(base: string, a: Attempt = {}) {
  const identity = a.identity ?? (await generateIdentity(true))
  const ch = a.challenge === undefined ? await challenge(base) : { challenge: a.challenge, bits: 0 }
  const natsKey = a.natsKey ?? createUser().getPublicKey()
  const payload: SignupPayload = {
    type: 'volunteer.signup',
    v: 1,
    peerId: identity.id,
    natsKey,
    challenge: ch.challenge,
  }
  const envelope = await seal('volunteer.signup', payload, a.signer ?? identity)
  const pow =
    a.pow ?? (await solvePow(await powPrefix(ch.challenge, identity.publicKey, natsKey), ch.bits)).nonce
  const body = signupRequest(envelope, pow) as unknown as Record<string, unknown>
  a.edit?.(body)
  return call(`${base}/v1/volunteers`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
}

function expectProblem(t: ExecutionContext, r: Problem, status: number, field?: string): void {
  t.is(r.status, status, JSON.stringify(r.body))
  t.is(r.headers.get('content-type')?.split(';')[0], 'application/problem+json')
  if (field !== undefined) t.is(r.body['field'], field, JSON.stringify(r.body))
}

/** Collects the permission violations the server reports to `nc`. */
function violations(nc: NatsConnection): string[] {
  const seen: string[] = []
  void (async () => {
    for await (const s of nc.status()) if (s.type === 'error') seen.push(String(s.error.message))
  })()
  return seen
}

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cohort-auth-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

test('auth - a connection without credentials is refused', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const err = await connect({ servers: services().natsUrl, inboxPrefix: '_INBOX.anyone' }).then(
    (nc) => nc.close().then(() => undefined),
    (e: unknown) => e,
  )
  t.true(err instanceof AuthorizationError, `anonymous connection: ${String(err)}`)
})

test("eavesdropping - a signed-up attacker cannot subscribe to others' inboxes or peer subjects and hears no grant of a job", async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const [w1, w2] = [await cluster.addWorker(), await cluster.addWorker()]
  const { nats: nc } = await rawVolunteer(t, cluster)
  const refused = violations(nc)
  const subjects = subjectsFor(cluster.subjectPrefix)
  const targets = [
    '_INBOX.>',
    `${inboxPrefixFor(w1.identity.id)}.>`,
    `${inboxPrefixFor(w2.identity.id)}.>`,
    `${subjects.peerInbox}.${w1.identity.id}`,
    `${subjects.peerInbox}.>`,
    subjects.workRequest,
  ]
  let heard = 0
  // The callback hears the refusal as an error; only messages count.
  for (const subject of targets)
    nc.subscribe(subject, { callback: (err) => void (err === null ? heard++ : undefined) })
  await nc.flush()
  await waitUntil('every subscription refused', () => refused.length >= targets.length, 10_000)
  for (const subject of targets)
    t.true(
      refused.some((v) => v.includes(`Subscription to "${subject}"`)),
      `${subject} refused: ${refused.join('; ')}`,
    )

  const job = await cluster.api.submit({
    type: 'primes',
    params: { to: 400_000, unitSize: 10_000 },
    redundancy: { quorum: 2 },
  })
  t.is((await waitForJob(cluster.api, job.id)).state, 'completed')
  t.true(w1.daemon.stats.unitsDone > 0 && w2.daemon.stats.unitsDone > 0, 'both honest workers worked')
  await nc.flush()
  t.is(heard, 0, "the attacker received none of the honest workers' messages")
})

test('discovery - a volunteer announces on its own shard only, and hears wants only as one of the providers’ queue', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const { nats: nc, identity } = await rawVolunteer(t, cluster)
  const refused = violations(nc)
  const subjects = subjectsFor(cluster.subjectPrefix)
  let other = await generateIdentity(false)
  while (peerShard(other.id) === peerShard(identity.id)) other = await generateIdentity(false)
  const foreign = announceSubject(subjects, other.id)
  const root = 'ab'.repeat(32)
  // Refused: another peer's shard, the old broadcast subject, and every want without the queue.
  nc.publish(foreign, new Uint8Array([1]))
  nc.publish(subjects.peerAnnounce, new Uint8Array([1]))
  nc.subscribe(`${subjects.peerWant}.>`, { callback: () => {} })
  nc.subscribe(wantSubject(subjects, root), { callback: () => {} })
  await nc.flush()
  await waitUntil('the four violations', () => refused.length >= 4, 10_000)
  for (const violation of [
    `Publish to "${foreign}"`,
    `Publish to "${subjects.peerAnnounce}"`,
    `Subscription to "${subjects.peerWant}.>"`,
    `Subscription to "${wantSubject(subjects, root)}"`,
  ])
    t.true(
      refused.some((v) => v.includes(violation)),
      `${violation}: ${refused.join('; ')}`,
    )
  // Allowed: its own shard, any region of shards, wants in the providers' queue, and asking.
  const count = refused.length
  let heard = 0
  nc.subscribe(`${subjects.peerAnnounce}.>`, { callback: () => void heard++ })
  nc.subscribe(wantSubject(subjects, root), { queue: PROVIDER_QUEUE, callback: () => {} })
  await nc.flush()
  nc.publish(announceSubject(subjects, identity.id), new Uint8Array([1]))
  nc.publish(wantSubject(subjects, root), new Uint8Array([1]))
  await nc.flush()
  await waitUntil('its own announcement heard', () => heard >= 1, 10_000)
  t.is(refused.length, count, refused.slice(count).join('; '))
})

test('signup - a valid sign-up gets a JWT for its own subjects; bad signatures, wrong or reused proofs and malformed bodies are refused naming the field', async (t) => {
  const cluster = await startCluster({ services: services(), tuning: { signupPowBits: 12 } })
  t.teardown(() => cluster.stop())
  const base = cluster.coordinators[0]!.url
  const counters = cluster.coordinators[0]!.counters

  t.is((await challenge(base)).bits, 12)
  const identity = await generateIdentity(true)
  const good = await signUpRaw(base, { identity })
  t.is(good.status, 201, JSON.stringify(good.body))
  t.is(good.body['peerId'], identity.id)
  t.true(typeof good.body['jwt'] === 'string' && (good.body['expiresAt'] as number) > Date.now())

  // A replayed sign-up: the same challenge and proof again.
  const fresh = await challenge(base)
  const natsKey = createUser().getPublicKey()
  const prefix = await powPrefix(fresh.challenge, identity.publicKey, natsKey)
  const nonce = (await solvePow(prefix, fresh.bits)).nonce
  const replay = { identity, challenge: fresh.challenge, natsKey, pow: nonce }
  t.is((await signUpRaw(base, replay)).status, 201)
  expectProblem(t, await signUpRaw(base, replay), 422, 'challenge')

  // A challenge nobody issued.
  const unknown = { challenge: toBase64Url(new Uint8Array(32)), pow: '0'.repeat(16) }
  expectProblem(t, await signUpRaw(base, unknown), 422, 'challenge')
  // A proof that does not reach the difficulty (the first nonce that fails, found by counting up).
  const c2 = await challenge(base)
  const key2 = createUser().getPublicKey()
  const mine = await powPrefix(c2.challenge, identity.publicKey, key2)
  let n = 0
  while (checkPow(mine, n.toString(16).padStart(16, '0'), c2.bits)) n++
  const weak = { identity, challenge: c2.challenge, natsKey: key2, pow: n.toString(16).padStart(16, '0') }
  expectProblem(t, await signUpRaw(base, weak), 422, 'pow')
  // Signed by someone else than the identity it names.
  const other = await generateIdentity(true)
  expectProblem(t, await signUpRaw(base, { identity, signer: other }), 422, 'signer')
  // A signature that does not verify.
  expectProblem(
    t,
    await signUpRaw(base, {
      identity,
      edit: (b) => {
        const sig = b['sig'] as string
        b['sig'] = (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1)
      },
    }),
    422,
    'sig',
  )
  // Malformed bodies: a field of the wrong shape, a missing field, an unknown version, not JSON.
  expectProblem(t, await signUpRaw(base, { edit: (b) => void (b['pow'] = 'xyz') }), 422, 'pow')
  expectProblem(t, await signUpRaw(base, { edit: (b) => delete b['signer'] }), 422, 'signer')
  expectProblem(t, await signUpRaw(base, { edit: (b) => void (b['v'] = 2) }), 422, 'v')
  expectProblem(t, await signUpRaw(base, { natsKey: 'not-a-user-key' }), 422, 'natsKey')
  expectProblem(
    t,
    await call(`${base}/v1/volunteers`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"v": 1, ',
    }),
    400,
  )
  expectProblem(
    t,
    await call(`${base}/v1/volunteers`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '[1, 2]',
    }),
    400,
  )
  t.is(counters.volunteersSignedUp, 2)
  t.true(counters.signupsRefused >= 10)
})

test('signup - is public on a coordinator that refuses callers without an API key', async (t) => {
  const cluster = await startCluster({ services: services(), tuning: { anonymous: false } })
  t.teardown(() => cluster.stop())
  const base = cluster.coordinators[0]!.url
  t.is((await call(`${base}/v1/jobs`)).status, 401)
  t.is((await signUpRaw(base)).status, 201)
})

test('signup - an expired challenge is refused', async (t) => {
  const cluster = await startCluster({ services: services(), tuning: { signupChallengeTtlMs: 1000 } })
  t.teardown(() => cluster.stop())
  const base = cluster.coordinators[0]!.url
  const ch = await challenge(base)
  const redis = new Redis(services().redisUrl)
  t.teardown(() => redis.quit())
  const key = `${cluster.redisPrefix}signup:challenge:${ch.challenge}`
  t.is(await redis.exists(key), 1)
  await waitUntil('the challenge expired', async () => (await redis.exists(key)) === 0, 10_000)
  const identity = await generateIdentity(true)
  const natsKey = createUser().getPublicKey()
  const pow = (await solvePow(await powPrefix(ch.challenge, identity.publicKey, natsKey), ch.bits)).nonce
  expectProblem(
    t,
    await signUpRaw(base, { identity, challenge: ch.challenge, natsKey, pow }),
    422,
    'challenge',
  )
})

test('signup - too many sign-ups from one address answer 429 with Retry-After, on every coordinator', async (t) => {
  const cluster = await startCluster({
    services: services(),
    coordinators: 2,
    tuning: { signupPerAddress: 2, signupWindowMs: 600_000 },
  })
  t.teardown(() => cluster.stop())
  const [a, b] = cluster.coordinators.map((c) => c.url) as [string, string]
  t.is((await signUpRaw(a)).status, 201)
  t.is((await signUpRaw(b)).status, 201)
  // The third, on either coordinator: the count is shared in Redis.
  const refused = await signUpRaw(a)
  expectProblem(t, refused, 429)
  const retry = Number(refused.headers.get('retry-after'))
  t.true(retry > 0 && retry <= 600, `Retry-After ${retry}`)
  expectProblem(t, await signUpRaw(b), 429)
  // Challenges are limited too (a few per sign-up allowed): a flood of them ends in 429.
  let status = 200
  for (let i = 0; i < 20 && status === 200; i++) status = (await call(`${b}/v1/volunteers/challenge`)).status
  t.is(status, 429)
})

test('limits - a volunteer cannot hold more subscriptions or publish larger messages than its JWT allows', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const { identity, nats: nc } = await rawVolunteer(t, cluster)
  const seen = violations(nc)
  for (let i = 0; i < 80; i++) nc.subscribe(`${inboxPrefixFor(identity.id)}.s${i}`, { callback: () => {} })
  await nc.flush().catch(() => {})
  await waitUntil(
    'a subscription refused for the limit',
    () => seen.some((v) => /maximum subscriptions/i.test(v)),
    10_000,
  )
  t.pass()
  // The client is told the limit; an attacker that ignores it is cut off by the server.
  t.is(nc.info?.max_payload, VOLUNTEER_NATS_LIMITS.payloadBytes)
  const err = await rawPublish(services().natsUrl, cluster, identity, VOLUNTEER_NATS_LIMITS.payloadBytes + 1)
  t.regex(err, /Maximum Payload Violation/i)
})

/** Logs in over a bare socket with signed-up credentials and publishes `size` bytes; resolves with the server's -ERR. */
async function rawPublish(
  natsUrl: string,
  cluster: Cluster,
  identity: Identity,
  size: number,
): Promise<string> {
  const user = createUser()
  const reply = await signUp({ ...cluster.volunteerAccess, identity, natsKey: user.getPublicKey() })
  const url = new URL(natsUrl)
  const socket = createConnection({ host: url.hostname, port: Number(url.port) })
  try {
    let buffer = ''
    const lines: string[] = []
    let wake: () => void = () => {}
    socket.setEncoding('utf8')
    socket.on('data', (d: string) => {
      buffer += d
      const parts = buffer.split('\r\n')
      buffer = parts.pop() ?? ''
      lines.push(...parts)
      wake()
    })
    socket.on('close', () => wake())
    // A reset after the server's -ERR is expected, not a test error.
    socket.on('error', () => wake())
    const next = async (re: RegExp): Promise<string> => {
      for (;;) {
        const hit = lines.find((l) => re.test(l))
        if (hit !== undefined) return hit
        if (socket.destroyed) throw new Error(`connection closed; got ${lines.join(' | ')}`)
        await new Promise<void>((resolve) => (wake = resolve))
      }
    }
    const info = JSON.parse((await next(/^INFO /)).slice(5)) as { nonce: string }
    const sig = toBase64Url(user.sign(new TextEncoder().encode(info.nonce)))
    socket.write(
      `CONNECT ${JSON.stringify({ verbose: false, pedantic: false, jwt: reply.jwt, sig, protocol: 1 })}\r\nPING\r\n`,
    )
    await next(/^PONG/)
    // A subject it may publish on: its own announcement shard.
    const subject = announceSubject(subjectsFor(cluster.subjectPrefix), identity.id)
    // The server checks the size in the PUB line itself: it answers -ERR and closes before reading a
    // payload, so none is sent (writing one would race the close).
    socket.write(`PUB ${subject} ${size}\r\n`)
    return await next(/^-ERR/)
  } finally {
    socket.destroy()
  }
}

async function cliWorker(t: ExecutionContext, cluster: Cluster, keyFile: string) {
  const child = spawnCohort(cluster.workerArgs(keyFile, '--threads', '1'))
  t.teardown(() => child.kill())
  await child.waitForLine(/worker started/, 60_000)
  return child
}

test('cli - `cohort worker --coordinator` signs up by itself, keeps its credentials (0600) and completes a job; a restart reuses them', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const dir = await tempDir(t)
  const keyFile = join(dir, 'w.json')
  const counters = cluster.coordinators[0]!.counters
  const child = await cliWorker(t, cluster, keyFile)
  t.is(counters.volunteersSignedUp, 1)
  const file = credentialFileFor(keyFile)
  t.is((await stat(file)).mode & 0o777, 0o600)
  const stored = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>
  t.like(stored, { v: 1, coordinatorUrl: cluster.coordinators[0]!.url })
  t.regex(String(stored['natsSeed']), /^SU/)
  const job = await cluster.api.submit({
    type: 'primes',
    params: { to: 100_000, unitSize: 25_000 },
    redundancy: { quorum: 1 },
  })
  t.is((await waitForJob(cluster.api, job.id)).state, 'completed')
  await child.kill('SIGTERM')

  await cliWorker(t, cluster, keyFile)
  t.is(counters.volunteersSignedUp, 1, 'the stored credentials were used again')
  const again = await cluster.api.submit({
    type: 'primes',
    params: { to: 100_000, unitSize: 25_000 },
    redundancy: { quorum: 1 },
  })
  t.is((await waitForJob(cluster.api, again.id)).state, 'completed')
})

test('cli - a worker whose stored credentials the server refuses signs up again and works', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const dir = await tempDir(t)
  const keyFile = join(dir, 'w.json')
  const identity = await generateIdentity(true)
  await writeFile(keyFile, JSON.stringify(await exportIdentity(identity)), { mode: 0o600 })
  // Credentials of another deployment (an account this server does not trust), not yet expired.
  const user = createUser()
  const foreign = createVolunteerIssuer({
    accountSeed: new TextDecoder().decode(createAccount().getSeed()),
    subjectPrefix: cluster.subjectPrefix,
    ttlMs: 3600_000,
  }).issue(identity.id, user.getPublicKey())
  await writeFile(
    credentialFileFor(keyFile),
    JSON.stringify({
      v: 1,
      peerId: identity.id,
      coordinatorUrl: cluster.coordinators[0]!.url,
      natsSeed: new TextDecoder().decode(user.getSeed()),
      jwt: foreign.jwt,
      expiresAt: foreign.expiresAt,
    }),
    { mode: 0o600 },
  )
  await cliWorker(t, cluster, keyFile)
  t.is(cluster.coordinators[0]!.counters.volunteersSignedUp, 1)
  const job = await cluster.api.submit({
    type: 'primes',
    params: { to: 100_000, unitSize: 25_000 },
    redundancy: { quorum: 1 },
  })
  t.is((await waitForJob(cluster.api, job.id)).state, 'completed')
})
