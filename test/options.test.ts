// Options: every coordinator option is validated once, with a message that names the field.
import test from 'ava'
import { DEFAULT_TUNING, resolveTuning } from '../coordinator/index.js'
import { ConfigError } from '../shared/index.js'
import { intFlag, loadEnvConfig } from '../scripts/config.js'

test('options - defaults are used when nothing is given', (t) => {
  t.deepEqual(resolveTuning(), DEFAULT_TUNING)
  t.is(resolveTuning({ leaseMs: 5_000 }).leaseMs, 5_000)
})

const bad: [string, Record<string, unknown>, RegExp][] = [
  ['an unknown option', { leaseMS: 10 }, /unknown coordinator option "leaseMS"/],
  ['a bad redis prefix', { redisPrefix: 'has space' }, /redisPrefix/],
  ['a bad subject prefix', { subjectPrefix: 'a..b' }, /subjectPrefix/],
  ['a lease that is too short', { leaseMs: 10 }, /leaseMs must be an integer in 500\.\./],
  ['a fractional reap interval', { reapIntervalMs: 1.5 }, /reapIntervalMs/],
  ['a sweep interval of zero', { sweepIntervalMs: 0 }, /sweepIntervalMs/],
  ['no worker budget per unit', { maxWorkersPerUnit: 0 }, /maxWorkersPerUnit/],
  ['a lease cap above what a request lists', { leaseCapMax: 257 }, /leaseCapMax/],
  ['a lease cap maximum below its base', { leaseCapBase: 8, leaseCapMax: 4 }, /leaseCapMax/],
  ['no work requests per second', { workRequestsPerSecond: 0 }, /workRequestsPerSecond/],
  ['a lease lifetime floor under a second', { leaseLifetimeFloorMs: 10 }, /leaseLifetimeFloorMs/],
  ['a tiny lease scan', { leaseScan: 1 }, /leaseScan/],
  ['a quorum of 11', { defaultQuorum: 11 }, /defaultQuorum/],
  ['a huge body limit', { maxBodyBytes: 1e9 }, /maxBodyBytes/],
  ['no requests in flight', { maxInflight: 0 }, /maxInflight/],
  ['a negative stop timeout', { stopTimeoutMs: -1 }, /stopTimeoutMs/],
  ['a short API key', { apiKeys: ['short'] }, /apiKeys/],
  ['a module limit above 4 MiB', { maxModuleBytes: 4 * 1024 * 1024 + 1 }, /maxModuleBytes/],
  ['a blob limit above 4 MiB', { maxBlobBytes: 4 * 1024 * 1024 + 1 }, /maxBlobBytes/],
  ['a dataset limit above 512 MiB', { maxDatasetBytes: 512 * 1024 * 1024 + 1 }, /maxDatasetBytes/],
  ['a module memory cap above 256 pages', { maxModulePages: 257 }, /maxModulePages/],
]
for (const [what, given, message] of bad) {
  test(`options - ${what} is refused naming the field`, (t) => {
    t.throws(() => resolveTuning(given as never), { instanceOf: ConfigError, message })
  })
}

test('options - CLI integers name the flag', (t) => {
  t.is(intFlag('port', '8080', 0, 65535), 8080)
  t.is(intFlag('port', undefined, 0, 65535), undefined)
  t.throws(() => intFlag('port', '80x', 0, 65535), {
    instanceOf: ConfigError,
    message: /--port must be an integer/,
  })
  t.throws(() => intFlag('threads', '0', 1, 8), { instanceOf: ConfigError, message: /--threads/ })
})

test('options - the environment is read in one place and a bad log level is named', (t) => {
  const env = loadEnvConfig({ REDIS_URL: 'redis://x:1', COHORT_TRUST: 'a, b', COHORT_LOG_LEVEL: 'warn' })
  t.is(env.redisUrl, 'redis://x:1')
  t.deepEqual(env.trust, ['a', 'b'])
  t.is(env.logLevel, 'warn')
  t.is(env.apiUrl, 'http://127.0.0.1:8080')
  t.throws(() => loadEnvConfig({ COHORT_LOG_LEVEL: 'loud' }), {
    instanceOf: ConfigError,
    message: /COHORT_LOG_LEVEL/,
  })
})
