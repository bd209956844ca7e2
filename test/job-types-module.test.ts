// Job types reach the runner's threads as a module: a job type defined in a test fixture runs in a
// piscina thread, a module that lacks a kind it is said to export fails clearly, and a daemon refuses
// job types its runner cannot run before it takes any unit.
import test from 'ava'
import { primes } from '../jobs/index.js'
import { ConfigError, decode, sha256Hex } from '../shared/index.js'
import { runnableJobTypes } from '../worker/daemon/job-types.js'
import { createPoolRunner, loadJobTypes, registryOf } from '../worker/index.js'
import { jobTypes as fixtureTypes, reverse } from './fixtures/reverse-job-types.js'

const fixture = new URL('./fixtures/reverse-job-types.js', import.meta.url)

test('runner - a job type from a custom job types module runs in a piscina thread', async (t) => {
  const runner = createPoolRunner({ threads: 1, jobTypes: { url: fixture, kinds: ['reverse@1'] } })
  t.teardown(() => runner.close())
  t.deepEqual([...runner.kinds], ['reverse@1'])
  const out = await runner.run({ kind: 'reverse@1', input: { text: 'cohort' } }, new AbortController().signal)
  t.deepEqual(decode(out.output), { reversed: 'trohoc' })
  t.is(out.digest, await sha256Hex(out.output))
  // The thread has the module's job types only, not the built-in ones.
  const err = await t.throwsAsync(
    runner.run({ kind: 'primes@1', input: { from: 0, to: 1000 } }, new AbortController().signal),
  )
  t.regex(err?.message ?? '', /primes@1 is not in this runner's registry/)
})

test('runner - the default pool runs the built-in job types', (t) => {
  const runner = createPoolRunner({ threads: 1 })
  t.teardown(() => runner.close())
  t.true(runner.kinds.has('primes@1'))
  t.false(runner.kinds.has('reverse@1'))
})

test('runner - a module that does not export a kind it is said to have fails clearly', async (t) => {
  const err = await t.throwsAsync(loadJobTypes(fixture, ['reverse@1', 'missing@1']), {
    instanceOf: ConfigError,
  })
  t.regex(err?.message ?? '', /reverse-job-types\.js does not export missing@1/)
  t.deepEqual([...(await loadJobTypes(fixture, ['reverse@1'])).keys()], ['reverse@1'])
})

test('runner - a module whose jobTypes export is not job types is refused', (t) => {
  t.throws(() => registryOf({}, 'm.js'), {
    instanceOf: ConfigError,
    message: /m\.js: its jobTypes export must be/,
  })
  t.throws(() => registryOf({ jobTypes: [{ name: 'x' }] }, 'm.js'), {
    instanceOf: ConfigError,
    message: /not a job type/,
  })
  t.deepEqual([...registryOf({ jobTypes: new Map([['reverse@1', reverse]]) }, 'm.js').keys()], ['reverse@1'])
})

test('daemon - job types its runner cannot run are refused before any unit is taken', (t) => {
  const runner = { kinds: new Set(['reverse@1']) }
  const err = t.throws(() => runnableJobTypes([primes, ...fixtureTypes], runner), { instanceOf: ConfigError })
  t.regex(err?.message ?? '', /^jobTypes: the runner cannot run primes@1 \(it runs reverse@1\)/)
  t.deepEqual([...runnableJobTypes(fixtureTypes, runner).keys()], ['reverse@1'])
})
