// WebAssembly jobs in Chromium: a contribute tab and a worker daemon share AssemblyScript and WAT
// jobs at quorum 2, so every unit's output from a browser Web Worker matched a piscina thread's.
import test from 'ava'
import { openContribute, useBrowser } from './helpers/browser.js'
import { jobUnitResults, startCluster, waitForJob } from './helpers/cluster.js'
import { useServices } from './helpers/services.js'
import { fnv1aBase64, fnvModule, primesModule, uploadOk } from './helpers/wasm.js'

const services = useServices(test)
const browser = useBrowser(test)

test('wasm browser - a Chromium tab and a daemon agree on every unit of an AssemblyScript and a WAT job', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const url = cluster.coordinators[0]!.url
  const tab = await openContribute(browser(), url)
  t.teardown(() => tab.close())
  const browserId = (await tab.snapshot()).id
  await tab.page.click('#toggle')
  await tab.waitFor('the tab computing', (s) => s.state === 'running')
  const daemon = await cluster.addWorker()

  const primes = await uploadOk(url, await primesModule())
  const fnv = await uploadOk(url, await fnvModule())
  const pj = await cluster.api.submit({
    type: 'wasm',
    params: { module: primes, input: { range: { from: 0, to: 4_000_000, step: 500_000 } }, merge: 'sum-u64' },
  })
  const words = ['browser', 'and', 'daemon', 'agree']
  const fj = await cluster.api.submit({
    type: 'wasm',
    params: { module: fnv, input: { records: words, encoding: 'utf8' }, recordsPerUnit: 2 },
  })
  const [pd, fd] = [await waitForJob(cluster.api, pj.id), await waitForJob(cluster.api, fj.id)]
  t.is(pd.state, 'completed', JSON.stringify(pd))
  t.is(fd.state, 'completed', JSON.stringify(fd))
  t.deepEqual((await cluster.api.result(pj.id)).result, { records: 8, sum: '283146' })
  t.deepEqual((await cluster.api.result(fj.id)).result, { records: 4, outputs: words.map(fnv1aBase64) })
  for (const job of [pd, fd]) {
    const workers = (await jobUnitResults(cluster, job.id, job.units.total)).map((rs) =>
      rs.map((r) => r.worker),
    )
    workers.forEach((ws, i) =>
      t.deepEqual(
        [...ws].sort(),
        [browserId, daemon.identity.id].sort(),
        `unit ${i}: one browser, one daemon`,
      ),
    )
  }
  t.is((await tab.snapshot()).stats?.unitsRefused, 0)
  t.deepEqual(tab.problems, [], 'no console errors, CSP violations or page errors')
})
