// Where the coordinator's Redis is: one Redis or a Redis Cluster URL, and the hash tag a cluster's
// key prefix must hold. Pure parsing and checks: no server.
import test from 'ava'
import { resolveTuning } from '../coordinator/index.js'
import { checkPrefixFor, hashTagOf, parseRedisTarget } from '../coordinator/redis-connection.js'
import { ConfigError } from '../shared/errors.js'

test('a redis:// URL is one Redis; a redis-cluster:// URL lists seed nodes, with a login and TLS', (t) => {
  t.deepEqual(parseRedisTarget('redis://127.0.0.1:6379'), { cluster: false, url: 'redis://127.0.0.1:6379' })
  t.deepEqual(parseRedisTarget('redis-cluster://r1:7000,10.0.0.2:7001,[::1]:7002'), {
    cluster: true,
    nodes: [
      { host: 'r1', port: 7000 },
      { host: '10.0.0.2', port: 7001 },
      { host: '::1', port: 7002 },
    ],
    tls: false,
  })
  t.like(parseRedisTarget('rediss-cluster://cohort:p%40ss@r1:7000/'), {
    cluster: true,
    username: 'cohort',
    password: 'p@ss',
    tls: true,
  })
})

test('a cluster URL without seeds, or with a seed that is not host:port, is refused naming it', (t) => {
  t.throws(() => parseRedisTarget('redis-cluster://'), { instanceOf: ConfigError, message: /seed nodes/ })
  t.throws(() => parseRedisTarget('redis-cluster://r1:7000,r2'), { instanceOf: ConfigError, message: /"r2"/ })
  t.throws(() => parseRedisTarget('redis-cluster://r1:70000'), {
    instanceOf: ConfigError,
    message: /"r1:70000"/,
  })
  const many = Array.from({ length: 65 }, (_, i) => `r${i}:7000`).join(',')
  t.throws(() => parseRedisTarget(`redis-cluster://${many}`), { instanceOf: ConfigError })
})

test('hash tags follow Redis Cluster: the text between the first { and the next }, when not empty', (t) => {
  t.is(hashTagOf('{cohort}:'), 'cohort')
  t.is(hashTagOf('site:{a-1}:'), 'a-1')
  t.is(hashTagOf('cohort:'), undefined)
  t.is(hashTagOf('{}:'), undefined)
})

test('a cluster configuration whose prefix has no hash tag is refused, naming the setting', (t) => {
  const cluster = parseRedisTarget('redis-cluster://127.0.0.1:7000,127.0.0.1:7001')
  const err = t.throws(() => checkPrefixFor(cluster, 'cohort:'), { instanceOf: ConfigError })
  t.regex(err?.message ?? '', /redisPrefix "cohort:" has no hash tag.*redis-cluster/)
  t.notThrows(() => checkPrefixFor(cluster, '{cohort}:'))
  // One Redis takes either.
  t.notThrows(() => checkPrefixFor(parseRedisTarget('redis://127.0.0.1:6379'), 'cohort:'))
})

test('redisPrefix takes at most one non-empty hash tag', (t) => {
  t.is(resolveTuning({ redisPrefix: '{cohort}:' }).redisPrefix, '{cohort}:')
  t.is(resolveTuning({ redisPrefix: 'site:{a}:' }).redisPrefix, 'site:{a}:')
  for (const bad of ['{}:', '{a}{b}:', 'co{hort:', 'co}hort:', ''])
    t.throws(
      () => resolveTuning({ redisPrefix: bad }),
      { instanceOf: ConfigError, message: /redisPrefix/ },
      bad,
    )
})
