// Browser contributor: real Chromium tabs on /contribute compute units next to worker daemons, refuse
// forged units, hand leases back when closed, pause and resume, and run kernels bit-identically.
import { connect } from '@nats-io/transport-node'
import test from 'ava'
import { mkdir } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import {
  decode,
  encode,
  generateIdentity,
  open,
  parseEnvelope,
  parseSignupPayload,
  parseSignupRequest,
  parseWorkRequest,
  randomId,
  seal,
  subjectsFor,
  type Identity,
  type SignedEnvelope,
} from '../shared/index.js'
import { createVolunteerIssuer } from '../coordinator/index.js'
import { builtinJobTypes } from '../jobs/index.js'
import { runUnit, type RunTask } from '../worker/index.js'
import { useBrowser, openContribute } from './helpers/browser.js'
import { jobUnitResults, replicaStates, startCluster, waitForJob, waitUntil } from './helpers/cluster.js'
import { uniquePrefix, useServices, asCoordinator } from './helpers/services.js'

const services = useServices(test)
const browser = useBrowser(test)
const SCREENSHOT = fileURLToPath(new URL('../../test-results/contribute.png', import.meta.url))

test.serial(
  'browser - a Chromium tab and a worker daemon share a job at quorum 2: every unit has one browser and one daemon replica',
  async (t) => {
    const cluster = await startCluster({ services: services() })
    t.teardown(() => cluster.stop())
    const tab = await openContribute(browser(), cluster.coordinators[0]!.url)
    t.teardown(() => tab.close())
    const browserId = (await tab.snapshot()).id
    t.is(await tab.page.getAttribute('body', 'data-worker-id'), browserId)
    await tab.page.click('#toggle')
    await tab.waitFor('the tab computing', (s) => s.state === 'running')
    const daemon = await cluster.addWorker()

    const primes = await cluster.api.submit({
      type: 'primes',
      params: { to: 20_000_000, unitSize: 2_000_000 },
    })
    const queens = await cluster.api.submit({ type: 'nqueens', params: { n: 10 } })
    const [pj, qj] = [await waitForJob(cluster.api, primes.id), await waitForJob(cluster.api, queens.id)]
    t.is(pj.state, 'completed')
    t.is(qj.state, 'completed')
    t.like((await cluster.api.result(primes.id)).result, { count: 1_270_607 })
    t.like((await cluster.api.result(queens.id)).result, { solutions: 724 })
    for (const job of [pj, qj]) {
      const workers = (await jobUnitResults(cluster, job.id, job.units.total)).map((rs) =>
        rs.map((r) => r.worker),
      )
      workers.forEach((ws, i) =>
        t.deepEqual(
          [...ws].sort(),
          [browserId, daemon.identity.id].sort(),
          `unit ${i} of ${job.type}: one browser and one daemon replica`,
        ),
      )
    }
    const s = await tab.snapshot()
    t.is(s.stats?.resultsAccepted, pj.units.total + qj.units.total)
    t.is(s.stats?.unitsRefused, 0)
    t.true(
      (await cluster.coordinators[0]!.store.workerStats(browserId)).valid > 0,
      'the browser earned credit',
    )

    await tab.waitFor('a piece on show', (x) => x.kind !== undefined)
    t.regex((await tab.page.textContent('#piece-title')) ?? '', /Counting primes|queens board/)
    await mkdir(fileURLToPath(new URL('.', `file://${SCREENSHOT}`)), { recursive: true })
    await tab.page.screenshot({ path: SCREENSHOT, fullPage: true })
    t.deepEqual(tab.problems, [], 'no console errors, CSP violations or page errors')
  },
)

test.serial('browser - kernels give bit-identical outputs in Chromium Web Workers and in Node', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const tab = await openContribute(browser(), cluster.coordinators[0]!.url)
  t.teardown(() => tab.close())
  const tasks: RunTask[] = [
    { kind: 'primes@1', input: { from: 0, to: 1_000 } },
    { kind: 'primes@1', input: { from: 0, to: 3_000_000 } },
    { kind: 'primes@1', input: { from: 4_294_967_000, to: 4_294_968_000 } },
    { kind: 'primes@1', input: { from: 999_999_000_000, to: 1_000_000_000_000 } },
    { kind: 'nqueens@1', input: { n: 1, prefix: [] } },
    { kind: 'nqueens@1', input: { n: 8, prefix: [0, 4] } },
    { kind: 'nqueens@1', input: { n: 12, prefix: [5] } },
  ]
  const inBrowser = await tab.page.evaluate((ts) => window.cohort!.runLocal(ts, 2), tasks)
  const inNode = await Promise.all(tasks.map((task) => runUnit(task, builtinJobTypes)))
  t.deepEqual(
    inBrowser.outcomes.map((o) => o.digest),
    inNode.map((o) => o.digest),
  )
})

/** A coordinator impostor on its own subject prefix: answers every work request with a forged unit. */
async function forger(coordinator: Identity, prefix: string) {
  const nc = await connect(asCoordinator(services()))
  const subjects = subjectsFor(prefix)
  const stranger = await generateIdentity(false)
  let served = 0
  let results = 0
  nc.subscribe(subjects.resultSubmit, { callback: () => void results++ })
  nc.subscribe(subjects.workRequest, {
    callback: (_err, msg) => {
      void (async () => {
        const env = parseEnvelope(decode(msg.data), 'work.request', 4096)
        const req = parseWorkRequest(await open(env))
        const now = Date.now()
        const unit = (signer: Identity): object => ({
          type: 'unit',
          v: 1,
          unitId: `forged:${served}`,
          replicaId: `forged:${served}:r0`,
          jobId: 'forged',
          kind: 'primes@1',
          input: { from: 0, to: 100_000 },
          worker: req.worker,
          issuedAt: now,
          expiresAt: now + 60_000,
          nonce: randomId(),
          kid: signer.keyId,
        })
        let forged: SignedEnvelope
        if (served % 2 === 0) {
          // Signed by the trusted coordinator key, then one bit of the signature flipped.
          forged = await seal('unit', unit(coordinator), coordinator)
          const sig = forged.sig.slice()
          sig[0] = sig[0]! ^ 1
          forged = { ...forged, sig }
        } else {
          // A valid signature, by a key the page does not trust.
          forged = await seal('unit', unit(stranger), stranger)
        }
        served++
        msg.respond(encode({ type: 'work.grant', v: 1, units: [forged], retryAfterMs: 200 }))
      })()
    },
  })
  return {
    get served() {
      return served
    },
    get results() {
      return results
    },
    close: () => nc.close(),
  }
}

test.serial(
  'browser - units with a tampered signature or an unknown signer are refused and never run',
  async (t) => {
    const cluster = await startCluster({ services: services() })
    t.teardown(() => cluster.stop())
    const fakePrefix = uniquePrefix('forged')
    const fake = await forger(cluster.identity, fakePrefix)
    t.teardown(() => fake.close())
    // The impostor also holds the deployment's account seed, so it can give the page credentials for
    // its subjects: the worst case, where only the page's trust in coordinator keys stands in the way.
    const issuer = createVolunteerIssuer({
      accountSeed: services().natsAccountSeed!,
      subjectPrefix: fakePrefix,
      ttlMs: 3600_000,
    })
    const tab = await openContribute(browser(), cluster.coordinators[0]!.url, {
      // The page trusts the real coordinator's key but talks on the impostor's subjects.
      setup: async (context) => {
        await context.route('**/contribute/config.json', async (route) => {
          const real = (await (await route.fetch()).json()) as Record<string, unknown>
          await route.fulfill({ json: { ...real, subjectPrefix: fakePrefix } })
        })
        await context.route('**/v1/volunteers', async (route) => {
          const { envelope } = parseSignupRequest(route.request().postDataJSON())
          const { peerId, natsKey } = parseSignupPayload(await open(envelope))
          await route.fulfill({ status: 201, json: { v: 1, peerId, ...issuer.issue(peerId, natsKey) } })
        })
      },
    })
    t.teardown(() => tab.close())
    await tab.page.click('#toggle')
    const s = await tab.waitFor('forged units refused', (x) => (x.stats?.unitsRefused ?? 0) >= 4)
    t.true(fake.served >= 4)
    t.is(s.stats?.unitsDone, 0, 'nothing ran')
    t.is(s.stats?.held, 0, 'nothing was kept')
    t.is(s.kind, undefined, 'no unit started')
    t.is(fake.results, 0, 'no result was sent')
    t.regex((await tab.page.textContent('#refused')) ?? '', /^[1-9]\d*$/)
    t.regex((await tab.page.textContent('#log')) ?? '', /signature does not verify/)
    t.regex((await tab.page.textContent('#log')) ?? '', /signed by an unknown key/)
  },
)

test.serial(
  'browser - closing a tab mid-unit hands its leases back at once; the units are reissued and the job completes',
  async (t) => {
    // Leases of 10 minutes: if anything waited for expiry, this job could not finish.
    const cluster = await startCluster({ services: services(), tuning: { leaseMs: 600_000 } })
    t.teardown(() => cluster.stop())
    // The leaving tab's units wait at a gate that never opens: it is closed while one runs and one
    // waits, whatever the machine's speed.
    const leaving = await openContribute(browser(), cluster.coordinators[0]!.url, { gate: true })
    t.teardown(() => leaving.close())
    await leaving.page.click('#toggle')
    await leaving.waitFor('the tab computing', (s) => s.state === 'running')
    const job = await cluster.api.submit({
      type: 'primes',
      params: { to: 1_600_000_000, unitSize: 200_000_000 },
    })
    const before = await leaving.waitFor(
      'a unit running and one buffered in the tab',
      (s) => s.stats?.running === 1 && s.stats.held === 2,
    )
    await waitUntil('the running unit at the gate', async () => (await leaving.gate!.arrived()) === 1)
    await leaving.page.close()
    // Leases last 10 minutes, so a lease no longer held was handed back, not expired.
    await waitUntil(
      'every lease of the closed tab handed back',
      async () => !(await replicaStates(cluster, before.id)).includes('leased'),
    )
    const states = await replicaStates(cluster, before.id)
    t.deepEqual(states, ['released', 'released'], 'the running unit and the buffered one, nothing else')

    await cluster.addWorker()
    const other = await openContribute(browser(), cluster.coordinators[0]!.url)
    t.teardown(() => other.close())
    await other.page.click('#toggle')
    const done = await waitForJob(cluster.api, job.id)
    t.is(done.state, 'completed')
    t.like((await cluster.api.result(job.id)).result, { count: 79_451_833 })
    t.is(cluster.coordinators[0]!.counters.leasesExpired, 0)
  },
)

test.serial(
  'browser - pause stops new units, resume carries on, the threads slider resizes the pool',
  async (t) => {
    const cluster = await startCluster({ services: services(), tuning: { leaseMs: 600_000 } })
    t.teardown(() => cluster.stop())
    const tab = await openContribute(browser(), cluster.coordinators[0]!.url)
    t.teardown(() => tab.close())
    await tab.page.click('#toggle')
    await tab.waitFor('the tab computing', (s) => s.state === 'running')
    const daemon = await cluster.addWorker()
    const job = await cluster.api.submit({
      type: 'primes',
      params: { to: 600_000_000, unitSize: 10_000_000 },
    })
    await tab.waitFor('a few units done', (s) => (s.stats?.unitsDone ?? 0) >= 3)

    await tab.page.click('#toggle')
    const paused = await tab.waitFor(
      'paused with nothing held',
      (s) => s.state === 'paused' && s.stats?.held === 0,
    )
    t.deepEqual(paused.reasons, ['user'])
    t.is(await tab.page.textContent('#toggle'), 'Resume')
    const doneAtPause = paused.stats?.unitsDone ?? 0
    const daemonAtPause = daemon.daemon.stats.unitsDone
    await waitUntil(
      'the daemon computing on meanwhile',
      () => daemon.daemon.stats.unitsDone >= daemonAtPause + 5,
    )
    t.is((await tab.snapshot()).stats?.unitsDone, doneAtPause, 'no unit ran while paused')
    t.not((await cluster.api.job(job.id)).state, 'completed', 'the job waits for the paused tab')

    await tab.page.locator('#threads').fill('2')
    await tab.waitFor('two Web Workers', (s) => s.threads === 2)
    await tab.page.click('#toggle')
    await tab.waitFor('running again', (s) => s.state === 'running')
    const done = await waitForJob(cluster.api, job.id)
    t.is(done.state, 'completed')
    t.like((await cluster.api.result(job.id)).result, { count: 31_324_703 })
    t.true(((await tab.snapshot()).stats?.unitsDone ?? 0) > doneAtPause)
    t.deepEqual(tab.problems, [])
  },
)

test.serial(
  'browser - the tab pauses on low battery and when hidden if asked; a returning volunteer keeps its identity and settings',
  async (t) => {
    const cluster = await startCluster({ services: services() })
    t.teardown(() => cluster.stop())
    const context = await browser().newContext()
    t.teardown(() => context.close())
    // A discharging battery at 10 %.
    await context.addInitScript(() => {
      const battery = Object.assign(new EventTarget(), { level: 0.1, charging: false })
      Object.defineProperty(navigator, 'getBattery', { value: () => Promise.resolve(battery) })
    })
    const tab = await openContribute(browser(), cluster.coordinators[0]!.url, { context })
    const first = await tab.snapshot()
    t.false(await tab.page.isHidden('#battery-row'))
    await tab.page.click('#toggle')
    const s = await tab.waitFor('paused on battery', (x) => x.state === 'paused')
    t.deepEqual(s.reasons, ['battery'])
    t.regex((await tab.page.textContent('#state')) ?? '', /battery/)
    await tab.page.locator('#battery-threshold').fill('5')
    await tab.waitFor('running below the new threshold', (x) => x.state === 'running')

    // "Pause while this tab is hidden": headless tabs are never hidden, so the test says they are.
    const setHidden = (hidden: boolean) =>
      tab.page.evaluate((h) => {
        Object.defineProperty(document, 'visibilityState', {
          value: h ? 'hidden' : 'visible',
          configurable: true,
        })
        document.dispatchEvent(new Event('visibilitychange'))
      }, hidden)
    await setHidden(true)
    t.is((await tab.snapshot()).state, 'running', 'hidden tabs compute unless the volunteer asks')
    await tab.page.check('#pause-hidden')
    t.deepEqual((await tab.waitFor('paused while hidden', (x) => x.state === 'paused')).reasons, ['hidden'])
    await setHidden(false)
    await tab.waitFor('running when shown again', (x) => x.state === 'running')

    await tab.page.reload()
    await tab.page.waitForFunction(() => window.cohort !== undefined)
    t.is((await tab.snapshot()).id, first.id, 'the identity survives a reload (IndexedDB)')
    t.regex((await tab.page.textContent('#log')) ?? '', /welcome back/)
    t.is(await tab.page.inputValue('#battery-threshold'), '5', 'settings survive a reload')
    t.true(await tab.page.isChecked('#pause-hidden'))
    await tab.close()
  },
)

test.serial('browser - two tabs of one browser share its identity and take turns contributing', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const context = await browser().newContext()
  t.teardown(() => context.close())
  const first = await openContribute(browser(), cluster.coordinators[0]!.url, { context })
  const second = await openContribute(browser(), cluster.coordinators[0]!.url, { context })
  t.is((await second.snapshot()).id, (await first.snapshot()).id)
  await first.page.click('#toggle')
  await first.waitFor('the first tab computing', (s) => s.state === 'running')
  await second.page.click('#toggle')
  await second.waitFor('the second tab waiting its turn', (s) => s.state === 'waiting')
  await first.page.close()
  await second.waitFor('the second tab taking over', (s) => s.state === 'running')
  await cluster.addWorker()
  const job = await cluster.api.submit({ type: 'nqueens', params: { n: 8 } })
  t.is((await waitForJob(cluster.api, job.id)).state, 'completed')
  t.true(((await second.snapshot()).stats?.resultsAccepted ?? 0) > 0)
  await second.close()
})
