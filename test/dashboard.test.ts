// The operators' dashboard: its JSON (/v1/admin/*) needs an admin key when keys are configured, its
// page is served under a strict CSP, the unit-state endpoint is bounded and exact, and in Chromium
// the page shows a submitted job's unit grid filling to 100 % and the workers online by runtime.
import test from 'ava'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { apiKeyDigest, type CoordinatorTuning } from '../coordinator/index.js'
import { DASHBOARD_CSP } from '../coordinator/http/dashboard.js'
import type { Overview, UnitStatesView } from '../shared/index.js'
import { openContribute, openPage, useBrowser } from './helpers/browser.js'
import { startCluster, waitForJob, waitUntil } from './helpers/cluster.js'
import { useServices } from './helpers/services.js'

const services = useServices(test)
const browser = useBrowser(test)

const KEY_SUBMITTER = `s-${'4'.repeat(40)}`
const KEY_ADMIN = `o-${'5'.repeat(40)}`
const keys: CoordinatorTuning['apiKeys'] = [
  { name: 'alice', role: 'submitter', sha256: apiKeyDigest(KEY_SUBMITTER) },
  { name: 'ops', role: 'admin', sha256: apiKeyDigest(KEY_ADMIN) },
]

const get = (base: string, path: string, key?: string): Promise<Response> =>
  fetch(new URL(path, base), {
    headers: key === undefined ? {} : { authorization: `Bearer ${key}` },
    signal: AbortSignal.timeout(10_000),
  })

test.serial(
  'dashboard - admin JSON needs an admin key when keys are configured; the page is public',
  async (t) => {
    const cluster = await startCluster({ services: services(), tuning: { apiKeys: keys } })
    t.teardown(() => cluster.stop())
    const url = cluster.coordinators[0]!.url
    // Anonymous callers are allowed by the test cluster: still not an operator.
    const anonymous = await get(url, '/v1/admin/overview')
    t.is(anonymous.status, 403)
    t.regex(((await anonymous.json()) as { detail: string }).detail, /admin key/)
    t.is((await get(url, '/v1/admin/overview', KEY_SUBMITTER)).status, 403)
    t.is((await get(url, '/v1/admin/overview', `x-${'9'.repeat(40)}`)).status, 401)
    const ok = await get(url, '/v1/admin/overview', KEY_ADMIN)
    t.is(ok.status, 200)
    t.is(ok.headers.get('cache-control'), 'no-store')
    t.like((await ok.json()) as Overview, { jobs: [], workers: { online: { daemon: 0, browser: 0 } } })
    // The page holds no data: served to anyone, under the CSP.
    const page = await get(url, '/dashboard')
    t.is(page.status, 200)
    t.is(page.headers.get('content-security-policy'), DASHBOARD_CSP)
    t.regex(await page.text(), /<script type="module" src="\/dashboard\/app.js"><\/script>/)
    t.is((await get(url, '/dashboard/app.js')).status, 200)
    t.is((await get(url, '/dashboard/nothing.js')).status, 404)
  },
)

test.serial('dashboard - unit states: one code per unit, bounded ranges, unknown jobs 404', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  await cluster.addWorker()
  await cluster.addWorker()
  const url = cluster.coordinators[0]!.url
  const job = await cluster.api.submit({ type: 'nqueens', params: { n: 11, depth: 2 } })
  const done = await waitForJob(cluster.api, job.id)
  const all = (await (await get(url, `/v1/admin/jobs/${job.id}/units`)).json()) as UnitStatesView
  t.is(all.total, done.units.total)
  t.is(all.states, 'v'.repeat(done.units.total))
  const part = (await (
    await get(url, `/v1/admin/jobs/${job.id}/units?from=2&count=3`)
  ).json()) as UnitStatesView
  t.like(part, { from: 2, states: 'vvv' })
  t.is((await get(url, `/v1/admin/jobs/${job.id}/units?count=5000`)).status, 400)
  t.is((await get(url, `/v1/admin/jobs/${job.id}/units?from=-1`)).status, 400)
  t.is((await get(url, '/v1/admin/jobs/nope/units')).status, 404)
  const overview = async (): Promise<Overview> =>
    (await (await get(url, '/v1/admin/overview')).json()) as Overview
  t.like((await overview()).jobs[0], {
    id: job.id,
    state: 'completed',
    units: { validated: done.units.total },
  })
  // Throughput is written once a second: every validated unit is in the last minutes' buckets.
  const sum = (o: Overview): number => o.throughput.units.reduce((a, b) => a + b, 0)
  await waitUntil('the throughput counts every unit', async () => sum(await overview()) >= done.units.total)
  t.is(sum(await overview()), done.units.total)
})

test.serial(
  'dashboard - in Chromium, a job’s unit grid fills to 100 % and the workers are counted by runtime',
  async (t) => {
    const cluster = await startCluster({ services: services(), tuning: { apiKeys: keys } })
    t.teardown(() => cluster.stop())
    const url = cluster.coordinators[0]!.url
    await cluster.addWorker()
    const tab = await openContribute(browser(), url)
    t.teardown(() => tab.close())
    await tab.page.click('#toggle')
    await tab.waitFor('the tab computing', (s) => s.state === 'running')

    const { page, problems } = await openPage(t, browser(), `${url}/dashboard`)
    await page.waitForFunction(() => document.body.dataset['state'] === 'error', null, { timeout: 15_000 })
    t.regex((await page.textContent('#status')) ?? '', /admin key/)
    await page.fill('#key', KEY_ADMIN)
    await page.click('#key-form button')
    await page.waitForFunction(() => document.body.dataset['state'] === 'ready', null, { timeout: 15_000 })

    const job = await cluster.api.submit({ type: 'primes', params: { to: 4_000_000, unitSize: 200_000 } })
    await page.waitForFunction((id) => document.getElementById('grid-job')?.textContent === id, job.id, {
      timeout: 30_000,
    })
    await page.waitForFunction(() => document.getElementById('grid-percent')?.textContent === '100 %', null, {
      timeout: 120_000,
      polling: 200,
    })
    const done = await waitForJob(cluster.api, job.id)
    t.is(done.state, 'completed')
    t.is(await page.getAttribute('#grid', 'data-validated'), String(done.units.total))
    t.is(await page.getAttribute('#grid', 'data-total'), String(done.units.total))
    await page.waitForFunction(() => document.getElementById('workers-total')?.textContent === '2', null, {
      timeout: 15_000,
    })
    t.is(await page.textContent('#workers-daemon'), '1')
    t.is(await page.textContent('#workers-browser'), '1')
    t.is(await page.locator('#workers tbody tr').count(), 2)
    t.is(await page.locator('#jobs tbody tr').count(), 1)
    // A poll sent before the key was given may answer 403 after it (the browser logs each such
    // answer); a 403 with the key would have kept the page in its error state, checked above.
    t.deepEqual(
      problems.filter((p) => !/\b403\b/.test(p)),
      [],
      'no CSP violation or page error',
    )

    const dir = await mkdtemp(join(tmpdir(), 'cohort-dashboard-'))
    const shot = join(dir, 'dashboard.png')
    await page.screenshot({ path: shot, fullPage: true })
    t.log(`screenshot: ${shot}`)
  },
)
