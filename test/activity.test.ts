// The cluster's activity record (who asked for work lately, by runtime) is written once per identity
// per REWRITE_MS, not on every request: a thousand volunteers asking every second must not cost five
// Redis commands each per second.
import test from 'ava'
import { Redis } from 'ioredis'
import { createActivity } from '../coordinator/metrics/activity.js'
import { testLogger } from './helpers/cluster.js'
import { uniquePrefix, useServices } from './helpers/services.js'

const services = useServices(test, { websocket: false })

test('an identity seen again in the same runtime is not written again within REWRITE_MS; a new runtime is', async (t) => {
  const redis = new Redis(services().redisUrl, { maxRetriesPerRequest: 2 })
  t.teardown(() => redis.disconnect())
  const p = `${uniquePrefix('activity')}:`
  const activity = createActivity({ redis, prefix: p, log: testLogger('activity').log })
  activity.seen('w1', 'daemon')
  await activity.flush()
  const first = await redis.hget(`${p}worker:w1`, 'lastSeen')
  t.truthy(first)
  t.deepEqual(await activity.online(Date.now()), { daemon: 1, browser: 0, unknown: 0 })
  // A marker the next flush would overwrite if it wrote the record again.
  await redis.hset(`${p}worker:w1`, 'lastSeen', 'marker')
  activity.seen('w1', 'daemon')
  await activity.flush()
  t.is(
    await redis.hget(`${p}worker:w1`, 'lastSeen'),
    'marker',
    'the second request within REWRITE_MS wrote nothing',
  )
  // The same identity now in a browser: written at once, and counted in one runtime only.
  activity.seen('w1', 'browser')
  await activity.flush()
  t.not(await redis.hget(`${p}worker:w1`, 'lastSeen'), 'marker')
  t.deepEqual(await activity.online(Date.now()), { daemon: 0, browser: 1, unknown: 0 })
})
