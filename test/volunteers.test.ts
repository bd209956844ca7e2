// Volunteers' public standing: the leaderboard's credit is the job types' estimates of the validated
// units, claims of a name and team are signed, fresh, once-only and for the signer only, team totals
// follow claims, /stats shows the leaderboard in Chromium with names as text, and the daemon's status
// and the contribute page show the coordinator's credit.
import test from 'ava'
import { Redis } from 'ioredis'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { STATS_CSP } from '../coordinator/http/stats-page.js'
import {
  formatCredit,
  generateIdentity,
  seal,
  signClaim,
  toBase64Url,
  type Identity,
  type Leaderboard,
  type LeaderboardTeam,
  type LeaderboardVolunteer,
  type VolunteerRecord,
} from '../shared/index.js'
import { claimStanding } from '../worker/index.js'
import { readStatus } from '../worker/policy/index.js'
import { openContribute, openPage, useBrowser } from './helpers/browser.js'
import { spawnCohort, startCluster, waitForJob, waitUntil, type Cluster } from './helpers/cluster.js'
import { useServices } from './helpers/services.js'

const services = useServices(test)
const browser = useBrowser(test)
const SCREENSHOT = fileURLToPath(new URL('../../test-results/stats.png', import.meta.url))

async function getJson<T>(base: string, path: string): Promise<{ status: number; body: T }> {
  const res = await fetch(new URL(path, base), { signal: AbortSignal.timeout(10_000) })
  return { status: res.status, body: (await res.json()) as T }
}

const post = async (
  base: string,
  body: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> => {
  const res = await fetch(new URL('/v1/volunteers/claims', base), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

/** A claim request with any payload, signed by `identity` (what a forger or a buggy client sends). */
async function crafted(identity: Identity, payload: Record<string, unknown>) {
  const env = await seal('volunteer.claim', payload, identity)
  return { v: 1, body: toBase64Url(env.body), signer: toBase64Url(env.signer), sig: toBase64Url(env.sig) }
}

const nonce = (): string => toBase64Url(crypto.getRandomValues(new Uint8Array(16)))

/** A cluster of two daemons (a, b), and a Redis connection to read it; all closed at the test's end. */
async function twoDaemons(t: { teardown(fn: () => unknown): void }) {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const redis = new Redis(services().redisUrl)
  t.teardown(() => redis.disconnect())
  const url = cluster.coordinators[0]!.url
  const [a, b] = [(await cluster.addWorker()).identity, (await cluster.addWorker()).identity]
  return { cluster, redis, url, a, b }
}

/** A finished job run by two daemons; its credit per identity, from the units and the estimate. */
async function runJob(cluster: Cluster, redis: Redis): Promise<Map<string, number>> {
  const job = await cluster.api.submit({ type: 'nqueens', params: { n: 10, depth: 2 } })
  const done = await waitForJob(cluster.api, job.id)
  if (done.state !== 'completed') throw new Error(`job ${job.id} ${done.state}`)
  const p = cluster.redisPrefix
  // The job type's estimate of one unit's compute time, fixed at planning.
  const unitMs = Number(await redis.hget(`${p}job:${job.id}`, 'unitMs'))
  if (!(unitMs > 0)) throw new Error('no unit estimate')
  const expected = new Map<string, number>()
  const store = cluster.coordinators[0]!.store
  for (let i = 0; i < done.units.total; i++) {
    const uid = `${job.id}:${i}`
    const digest = await redis.hget(`${p}unit:${uid}`, 'digest')
    for (const r of await store.unitResults(uid))
      if (r.digest === digest) expected.set(r.worker, (expected.get(r.worker) ?? 0) + unitMs)
  }
  return expected
}

test.serial('volunteers - leaderboard credit equals the estimates of the validated units', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const redis = new Redis(services().redisUrl)
  t.teardown(() => redis.disconnect())
  await cluster.addWorker()
  await cluster.addWorker()
  const url = cluster.coordinators[0]!.url
  const first = await runJob(cluster, redis)
  const second = await runJob(cluster, redis)
  const expected = new Map(first)
  for (const [w, ms] of second) expected.set(w, (expected.get(w) ?? 0) + ms)
  t.log('expected credit, ms:', Object.fromEntries(expected))
  t.is(expected.size, 2)

  const board = await getJson<Leaderboard<LeaderboardVolunteer>>(url, '/v1/leaderboard')
  t.is(board.status, 200)
  t.is(board.body.total, 2)
  const byId = (m: Map<string, number>): [string, number][] => [...m].sort(([x], [y]) => x.localeCompare(y))
  t.deepEqual(
    byId(new Map(board.body.entries.map((e) => [e.id, e.creditMs]))),
    byId(expected),
    'each identity: the unit estimate times the units its results agreed on',
  )
  t.deepEqual(
    board.body.entries.map((e) => e.rank),
    [1, 2],
  )
  t.true((board.body.entries[0]?.creditMs ?? 0) >= (board.body.entries[1]?.creditMs ?? 0))
  const total = [...expected.values()].reduce((a, b) => a + b, 0)
  t.is(Number(await redis.hget(`${cluster.redisPrefix}totals`, 'creditMs')), total)

  for (const w of cluster.workers) {
    const rec = await getJson<VolunteerRecord>(url, `/v1/volunteers/${w.identity.id}`)
    t.is(rec.status, 200)
    t.like(rec.body, { id: w.identity.id, creditMs: expected.get(w.identity.id), caught: false })
    t.true(rec.body.unitsValidated > 0)
    t.is(typeof rec.body.rank, 'number')
    // Nothing private: no owner link, network or claimed times.
    t.deepEqual(
      Object.keys(rec.body).filter((k) => ['owner', 'net', 'claimedMs', 'vouched'].includes(k)),
      [],
    )
  }
  // First and last seen and the runtime come from the work requests, written once a second.
  await waitUntil('the daemon seen', async () => {
    const r = (await getJson<VolunteerRecord>(url, `/v1/volunteers/${cluster.workers[0]!.identity.id}`)).body
    return r.runtimes.daemon !== undefined && r.firstSeen !== undefined && r.lastSeen !== undefined
  })

  // Bounded pages, bad queries named.
  const page = await getJson<Leaderboard<LeaderboardVolunteer>>(url, '/v1/leaderboard?offset=1&limit=1')
  t.like(page.body, { total: 2, offset: 1 })
  t.deepEqual(
    page.body.entries.map((e) => e.rank),
    [2],
  )
  for (const [q, field] of [
    ['limit=101', 'limit'],
    ['offset=-1', 'offset'],
    ['by=owner', 'by'],
  ] as const) {
    const bad = await getJson<{ field: string }>(url, `/v1/leaderboard?${q}`)
    t.is(bad.status, 400, q)
    t.is(bad.body.field, field)
  }
  t.is((await getJson(url, '/v1/volunteers/not-an-id')).status, 400)
  t.is((await getJson(url, `/v1/volunteers/${(await generateIdentity(true)).id}`)).status, 404)
})

test.serial(
  'volunteers - a claim is refused for a bad signature, a replay, a bad name or another identity',
  async (t) => {
    const cluster = await startCluster({ services: services() })
    t.teardown(() => cluster.stop())
    const url = cluster.coordinators[0]!.url
    const me = (await cluster.addWorker()).identity
    const other = (await cluster.addWorker()).identity

    const good = await signClaim(me, { name: 'Ada Lovelace', team: 'Analytical' })
    const ok = await post(url, good)
    t.is(ok.status, 200)
    t.like(ok.body, { id: me.id, name: 'Ada Lovelace', team: 'Analytical' })

    const refusals: [string, unknown, number, string][] = [
      ['replayed', good, 422, 'nonce'],
      [
        'bad signature',
        { ...(await signClaim(me, { name: 'Ada' })), sig: toBase64Url(new Uint8Array(64).fill(7)) },
        422,
        'sig',
      ],
      [
        "another identity's id",
        await crafted(me, {
          type: 'volunteer.claim',
          v: 1,
          peerId: other.id,
          name: 'Evil',
          at: Date.now(),
          nonce: nonce(),
        }),
        422,
        'peerId',
      ],
      [
        'too long a name',
        await crafted(me, {
          type: 'volunteer.claim',
          v: 1,
          peerId: me.id,
          name: 'x'.repeat(33),
          at: Date.now(),
          nonce: nonce(),
        }),
        422,
        'name',
      ],
      [
        'markup in a team',
        await crafted(me, {
          type: 'volunteer.claim',
          v: 1,
          peerId: me.id,
          name: 'Ada',
          team: '<b>x</b>',
          at: Date.now(),
          nonce: nonce(),
        }),
        422,
        'team',
      ],
      [
        'stale',
        await crafted(me, {
          type: 'volunteer.claim',
          v: 1,
          peerId: me.id,
          name: 'Ada',
          at: Date.now() - 600_000,
          nonce: nonce(),
        }),
        422,
        'at',
      ],
      ['extra field', { ...good, owner: 'x' }, 422, 'owner'],
    ]
    for (const [what, body, status, field] of refusals) {
      const res = await post(url, body)
      t.is(res.status, status, what)
      t.is(res.body['field'], field, what)
    }
    // An identity the cluster never heard of: nothing to name.
    const stranger = await post(url, await signClaim(await generateIdentity(true), { name: 'Nobody' }))
    t.is(stranger.status, 404)
    // The refusals changed nothing.
    t.like((await getJson<VolunteerRecord>(url, `/v1/volunteers/${me.id}`)).body, {
      name: 'Ada Lovelace',
      team: 'Analytical',
    })
    // Letters of any script are names too.
    t.like(await claimStanding(url, other, { name: 'Zoë Ĳssel-山田', team: 'Équipe 1' }), {
      name: 'Zoë Ĳssel-山田',
    })
    await t.throwsAsync(
      signClaim(me, { name: ' padded' }),
      { name: 'ValidationError' },
      'the client checks too',
    )
  },
)

test.serial(
  'volunteers - team totals follow claims, and a team with no member leaves the board',
  async (t) => {
    const { cluster, redis, url, a, b } = await twoDaemons(t)
    // A team claimed before any credit: its members' later credit adds up in it.
    await claimStanding(url, a, { name: 'A', team: 'Red' })
    const credit = await runJob(cluster, redis)
    const [ca, cb] = [credit.get(a.id) ?? 0, credit.get(b.id) ?? 0]
    t.true(ca > 0 && cb > 0)
    const teams = async (): Promise<LeaderboardTeam[]> =>
      (await getJson<Leaderboard<LeaderboardTeam>>(url, '/v1/leaderboard?by=team')).body.entries
    t.deepEqual(await teams(), [{ rank: 1, team: 'Red', creditMs: ca, members: 1 }])

    await claimStanding(url, b, { name: 'B', team: 'Red' })
    t.deepEqual(await teams(), [{ rank: 1, team: 'Red', creditMs: ca + cb, members: 2 }])

    await claimStanding(url, b, { name: 'B', team: 'Blue' })
    const moved = await teams()
    t.deepEqual(
      moved.find((e) => e.team === 'Red'),
      { rank: moved.findIndex((e) => e.team === 'Red') + 1, team: 'Red', creditMs: ca, members: 1 },
    )
    t.like(
      moved.find((e) => e.team === 'Blue'),
      { creditMs: cb, members: 1 },
    )

    await claimStanding(url, b, { name: 'B' })
    t.deepEqual(await teams(), [{ rank: 1, team: 'Red', creditMs: ca, members: 1 }])
    const board = (await getJson<Leaderboard<LeaderboardVolunteer>>(url, '/v1/leaderboard')).body
    t.like(
      board.entries.find((e) => e.id === a.id),
      { name: 'A', team: 'Red', creditMs: ca },
    )
  },
)

test.serial(
  'volunteers - /stats renders the leaderboard in Chromium, a malicious name as text',
  async (t) => {
    const { cluster, redis, url, a, b } = await twoDaemons(t)
    await runJob(cluster, redis)
    const evil = '<img src=x onerror="window.pwned=1">'
    // Claims refuse markup …
    const refused = await post(
      url,
      await crafted(a, {
        type: 'volunteer.claim',
        v: 1,
        peerId: a.id,
        name: evil,
        at: Date.now(),
        nonce: nonce(),
      }),
    )
    t.is(refused.body['field'], 'name')
    // … and the page would show it as text anyway (a name stored by another version, or a bug).
    await claimStanding(url, a, { name: 'placeholder', team: 'Red' })
    await redis.hset(`${cluster.redisPrefix}worker:${a.id}`, 'name', evil)
    await claimStanding(url, b, { name: 'Grace', team: 'Red' })

    const head = await fetch(`${url}/stats`, { signal: AbortSignal.timeout(10_000) })
    t.is(head.status, 200)
    t.is(head.headers.get('content-security-policy'), STATS_CSP)

    const { page, problems } = await openPage(t, browser(), `${url}/stats?id=${b.id}`)
    await page.waitForFunction(() => document.querySelectorAll('#volunteers tbody tr').length === 2, null, {
      timeout: 15_000,
    })
    const names = await page.$$eval('#volunteers tbody tr td:nth-child(2)', (tds) =>
      tds.map((td) => td.textContent),
    )
    t.deepEqual([...names].sort(), [evil, 'Grace'].sort())
    t.is(await page.$('#volunteers img'), null, 'no element made from the name')
    t.is(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned), undefined)
    const team = await page.$$eval('#teams tbody tr td', (tds) => tds.map((td) => td.textContent))
    t.is(team[1], 'Red')
    t.is(team[3], '2')
    // The looked-up volunteer's record.
    await page.waitForFunction(
      () => (document.getElementById('record')?.textContent ?? '').includes('Grace'),
      null,
      {
        timeout: 15_000,
      },
    )
    await mkdir(fileURLToPath(new URL('.', `file://${SCREENSHOT}`)), { recursive: true })
    await page.screenshot({ path: SCREENSHOT, fullPage: true })
    t.deepEqual(problems, [], 'no console errors, CSP violations or page errors')
  },
)

test.serial(
  "volunteers - `cohort worker status` and the contribute page show the coordinator's credit",
  async (t) => {
    const cluster = await startCluster({ services: services() })
    t.teardown(() => cluster.stop())
    const url = cluster.coordinators[0]!.url
    const dir = await mkdtemp(join(tmpdir(), 'cohort-volunteers-'))
    t.teardown(() => rm(dir, { recursive: true, force: true }))
    const stateDir = join(dir, 'state')
    const daemon = spawnCohort(
      cluster.workerArgs(
        join(dir, 'key.json'),
        '--state-dir',
        stateDir,
        '--run',
        'always',
        '--credit-seconds',
        '1',
      ),
    )
    t.teardown(() => daemon.kill())
    const line = await daemon.waitForLine(/^worker \S+ running$/)
    const daemonId = line.split(' ')[1] ?? ''
    await cluster.vouch(daemonId)
    const tab = await openContribute(browser(), url)
    t.teardown(() => tab.close())
    const tabId = (await tab.snapshot()).id
    await tab.page.click('#toggle')
    await tab.waitFor('the tab computing', (s) => s.state === 'running')

    const job = await cluster.api.submit({ type: 'nqueens', params: { n: 10, depth: 2 } })
    t.is((await waitForJob(cluster.api, job.id)).state, 'completed')
    const record = async (id: string): Promise<VolunteerRecord> =>
      (await getJson<VolunteerRecord>(url, `/v1/volunteers/${id}`)).body
    const [d, b] = [await record(daemonId), await record(tabId)]
    t.true(d.creditMs > 0 && b.creditMs > 0, 'both earned credit')

    await waitUntil("the status file showing the coordinator's credit", async () => {
      const s = await readStatus(stateDir).catch(() => undefined)
      return s?.coordinator?.creditMs === d.creditMs
    })
    const status = spawnCohort(['worker', '--state-dir', stateDir, 'status'])
    const shown = await status.waitForLine(/^credit: /)
    t.is(shown.split(/ +/)[1], (d.creditMs / 1000).toFixed(1), shown)
    t.regex(shown, new RegExp(`${d.unitsValidated} units validated`))

    await tab.page.waitForFunction(
      (text) => document.getElementById('credit')?.textContent === text,
      formatCredit(b.creditMs),
      { timeout: 40_000, polling: 200 },
    )
    t.regex(
      (await tab.page.textContent('#credit-note')) ?? '',
      new RegExp(`${b.unitsValidated} units validated`),
    )
    t.deepEqual(tab.problems, [], 'no console errors, CSP violations or page errors')
  },
)
