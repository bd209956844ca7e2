// Options: every coordinator option is validated once, with a message that names the field.
import test from 'ava'
import { apiKeyDigest, DEFAULT_TUNING, parseApiKeysFile, resolveTuning } from '../coordinator/index.js'
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
  ['negative event streams', { eventStreamsMax: -1 }, /eventStreamsMax/],
  ['a busy heartbeat', { eventHeartbeatMs: 5 }, /eventHeartbeatMs/],
  ['an event stream of no time', { eventStreamMaxMs: 0 }, /eventStreamMaxMs/],
  ['no requests in flight', { maxInflight: 0 }, /maxInflight/],
  ['a negative stop timeout', { stopTimeoutMs: -1 }, /stopTimeoutMs/],
  ['an API key that is not an object', { apiKeys: ['short'] }, /apiKeys\[0\] must be an object/],
  ['a short API key', { apiKeys: [{ name: 'a', key: 'short' }] }, /apiKeys\[0\]\.key must be 32\.\.512/],
  ['an anonymous setting that is not a boolean', { anonymous: 'yes' }, /anonymous must be true or false/],
  ['an unknown quota', { anonymousQuota: { units: 5 } }, /anonymousQuota\.units is not a quota/],
  [
    'a negative quota',
    { submitterQuota: { storedBytes: -1 } },
    /submitterQuota\.storedBytes must be an integer/,
  ],
  ['an upload retention under a second', { uploadRetentionMs: 10 }, /uploadRetentionMs/],
  ['a module limit above 4 MiB', { maxModuleBytes: 4 * 1024 * 1024 + 1 }, /maxModuleBytes/],
  ['a blob limit above 4 MiB', { maxBlobBytes: 4 * 1024 * 1024 + 1 }, /maxBlobBytes/],
  ['a dataset limit above 512 MiB', { maxDatasetBytes: 512 * 1024 * 1024 + 1 }, /maxDatasetBytes/],
  ['a module memory cap above 256 pages', { maxModulePages: 257 }, /maxModulePages/],
  ['an egress budget below one chunk', { egressBytesPerMinute: 1024 }, /egressBytesPerMinute/],
  ['a trusted proxy that is not a CIDR range', { trustedProxies: ['10.0.0.0/33'] }, /trustedProxies\[0\]/],
  [
    'exempt networks that are not a list',
    { placementExemptNetworks: '10.0.0.0/8' },
    /placementExemptNetworks/,
  ],
  [
    'an exempt network that is not an address',
    { placementExemptNetworks: ['lan'] },
    /placementExemptNetworks\[0\]/,
  ],
  ['a negative replica spread', { replicaSpreadMs: -1 }, /replicaSpreadMs/],
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

const KEY = 'k'.repeat(40)
const badFiles: [string, string, RegExp][] = [
  ['text that is not JSON', '{keys:', /keys\.json: not JSON/],
  ['a list at the top', '[]', /keys\.json: the file must hold an object like \{"keys"/],
  ['an unknown top-level field', '{"keys":[],"users":[]}', /keys\.json: users is not known/],
  ['a key without a name', `{"keys":[{"key":"${KEY}"}]}`, /keys\[0\]\.name must be/],
  [
    'the reserved name anonymous',
    `{"keys":[{"name":"Anonymous","key":"${KEY}"}]}`,
    /keys\[0\]\.name "Anonymous" is reserved/,
  ],
  [
    'an unknown role',
    `{"keys":[{"name":"a","role":"root","key":"${KEY}"}]}`,
    /keys\[0\]\.role must be "submitter" or "admin"/,
  ],
  [
    'both key and sha256',
    `{"keys":[{"name":"a","key":"${KEY}","sha256":"${'0'.repeat(64)}"}]}`,
    /keys\[0\] must have exactly one of key/,
  ],
  ['a bad sha256', '{"keys":[{"name":"a","sha256":"ABC"}]}', /keys\[0\]\.sha256 must be 64 lowercase hex/],
  [
    'a bad quota',
    `{"keys":[{"name":"a","key":"${KEY}","quota":{"requestsPerMinute":0}}]}`,
    /keys\[0\]\.quota\.requestsPerMinute must be an integer from 1/,
  ],
  [
    'two keys of one name',
    `{"keys":[{"name":"a","key":"${KEY}"},{"name":"A","key":"${'j'.repeat(40)}"}]}`,
    /keys\[1\]\.name "A" is used by another key/,
  ],
  [
    'one key twice',
    `{"keys":[{"name":"a","key":"${KEY}"},{"name":"b","sha256":"${apiKeyDigest(KEY)}"}]}`,
    /keys\[1\] is the same key as another entry/,
  ],
]
for (const [what, text, message] of badFiles) {
  test(`options - an API keys file with ${what} is refused naming the file and field`, (t) => {
    t.throws(() => parseApiKeysFile(text, 'keys.json'), { instanceOf: ConfigError, message })
  })
}

test('options - an API keys file keeps only digests, with role defaults and quota overrides', (t) => {
  const text = JSON.stringify({
    keys: [
      { name: 'alice', key: KEY, quota: { unitsInFlight: 5, storedBytes: null } },
      { name: 'ops', role: 'admin', sha256: apiKeyDigest('o'.repeat(40)) },
    ],
  })
  const specs = parseApiKeysFile(text, 'keys.json')
  t.deepEqual(specs, [
    {
      name: 'alice',
      role: 'submitter',
      sha256: apiKeyDigest(KEY),
      quota: { unitsInFlight: 5, storedBytes: null },
    },
    { name: 'ops', role: 'admin', sha256: apiKeyDigest('o'.repeat(40)) },
  ])
  t.false(JSON.stringify(resolveTuning({ apiKeys: specs })).includes(KEY))
})

test('options - the CLI key and the coordinator keys file come from the environment', (t) => {
  const env = loadEnvConfig({ COHORT_API_KEY: KEY, COHORT_API_KEYS_FILE: '/etc/cohort/keys.json' })
  t.is(env.apiKey, KEY)
  t.is(env.apiKeysFile, '/etc/cohort/keys.json')
  const none = loadEnvConfig({})
  t.is(none.apiKey, undefined)
  t.is(none.apiKeysFile, undefined)
})
