// The coordinator's config file: a bad value or an unknown key is refused naming the file and the
// field, in-process and by `cohort coordinator`; flags override the file; the file's log file gets
// one access-log line per request, with the route template, and every line is on disk after SIGTERM.
import test from 'ava'
import { once } from 'node:events'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect } from '../client/index.js'
import { DEFAULT_TUNING } from '../coordinator/index.js'
import { parseCoordinatorConfig, PROCESS_KEYS } from '../scripts/coordinator-config.js'
import { spawnCohort, startCluster, waitForJob } from './helpers/cluster.js'
import { useServices } from './helpers/services.js'

const services = useServices(test)

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cohort-config-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

const refused: [string, unknown, RegExp][] = [
  [
    'an out-of-range lease',
    { leaseMs: 10 },
    /^c\.json: leaseMs must be an integer in 500\.\.86400000, got 10$/,
  ],
  ['an unknown key', { leaseMS: 30000 }, /^c\.json: leaseMS: is not a known setting \(known: port, host, /],
  [
    'a port of the wrong type',
    { port: '8080' },
    /^c\.json: port: must be an integer from 0 to 65535, got "8080"$/,
  ],
  ['a bad log level', { logLevel: 'loud' }, /^c\.json: logLevel: must be one of debug, info, warn, error/],
  ['an empty Redis URL', { redisUrl: '' }, /^c\.json: redisUrl: must be a non-empty string/],
  ['a prefix of the wrong type', { redisPrefix: 5 }, /^c\.json: redisPrefix must be 1\.\.64 of/],
  ['a bad quota', { anonymousQuota: { unitsInFlight: -1 } }, /^c\.json: anonymousQuota/],
  ['not an object', [1], /^c\.json: the file: must hold a JSON object$/],
]
for (const [what, raw, message] of refused)
  test(`config - ${what} is refused, naming the field`, (t) => {
    t.throws(() => parseCoordinatorConfig(raw, 'c.json'), { name: 'ConfigError', message })
  })

test('config - a valid file keeps tuning and process settings apart', (t) => {
  const c = parseCoordinatorConfig({ port: 0, logLevel: 'warn', leaseMs: 60_000, accessLog: false }, 'c.json')
  t.deepEqual(c.process, { port: 0, logLevel: 'warn' })
  t.deepEqual(c.tuning, { leaseMs: 60_000, accessLog: false })
})

test('config - cohort coordinator refuses a bad file, naming the file and the field', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, 'coordinator.json')
  await writeFile(file, JSON.stringify({ leaseMs: 30_000, reapIntervalMs: 10 }))
  const run = spawnCohort(['coordinator', '--config', file])
  const [code] = (await once(run.child, 'exit')) as [number | null]
  t.is(code, 2)
  t.true(
    run.lines.some((l) => l.includes(`${file}: reapIntervalMs must be an integer in 50..60000, got 10`)),
    run.lines.join('\n'),
  )
})

test('config - flags override the file; its log file gets access lines, all flushed by SIGTERM', async (t) => {
  const cluster = await startCluster({ services: services() })
  t.teardown(() => cluster.stop())
  const dir = await tempDir(t)
  const logFile = join(dir, 'logs', 'coordinator.log')
  const file = join(dir, 'coordinator.json')
  // Prefixes no worker of this cluster uses: the cluster's, given as flags, must win.
  await writeFile(
    file,
    JSON.stringify({
      redisPrefix: 'elsewhere:',
      subjectPrefix: 'elsewhere',
      anonymous: true,
      logFile,
      port: 1,
    }),
  )
  const child = spawnCohort(cluster.coordinatorArgs(await cluster.writeCoordinatorKey(dir)), {
    ...cluster.coordinatorEnv,
    COHORT_COORDINATOR_CONFIG: file,
  })
  t.teardown(() => child.kill())
  const line = await child.waitForLine(/coordinator listening on/)
  const url = /listening on (http:\/\/\S+);/.exec(line)![1]!
  t.notRegex(url, /:1$/, '--port 0 overrides the file')
  await cluster.addWorker({ threads: 1 })
  const api = connect({ url })
  const job = await api.submit({ type: 'nqueens', params: { n: 8 }, redundancy: { quorum: 1 } })
  t.is((await waitForJob(api, job.id)).state, 'completed')

  const exited = once(child.child, 'exit') as Promise<[number | null]>
  child.child.kill('SIGTERM')
  t.is((await exited)[0], 0)
  const records = (await readFile(logFile, 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
  const access = records.filter((r) => r['ns'] === 'coordinator:http:access')
  t.true(
    access.some(
      (r) =>
        r['method'] === 'GET' &&
        r['route'] === '/v1/jobs/:id' &&
        r['status'] === 200 &&
        r['owner'] === 'anonymous' &&
        typeof r['ms'] === 'number' &&
        (r['bytes'] as number) > 0,
    ),
  )
  t.true(
    access.some((r) => r['method'] === 'POST' && r['route'] === '/v1/jobs' && r['status'] === 201),
    JSON.stringify(access.filter((r) => r['method'] === 'POST')),
  )
  // No raw path (job ids) and no key material in the access log.
  t.false(access.some((r) => JSON.stringify(r).includes(job.id)))
  // The last line the process wrote before exiting is on disk.
  t.is(records.at(-1)?.['msg'], 'coordinator stopped')
})

test('config - docs/deployment.md documents every key of the file', async (t) => {
  const doc = await readFile(new URL('../../docs/deployment.md', import.meta.url), 'utf8')
  for (const key of [...PROCESS_KEYS, ...Object.keys(DEFAULT_TUNING)])
    t.true(doc.includes(`| \`${key}\` |`), `${key} is not in the table`)
})
