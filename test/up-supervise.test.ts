// `cohort up` looks after what it starts: a worker killed mid-job comes back with the same identity
// and the job completes; SIGINT then stops every process of the cluster within the stated bound.
import test, { type ExecutionContext } from 'ava'
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect } from '../client/index.js'
import { STOP_BOUND_MS } from '../scripts/up.js'
import { spawnCohort, waitForJob, waitUntil } from './helpers/cluster.js'

/** Pids of every live descendant of `root` (threads are not processes; zombies count as gone). */
async function descendants(root: number): Promise<number[]> {
  const parents = new Map<number, number>()
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '')
    // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (rest[0] === undefined || rest[0] === 'Z' || rest[1] === undefined) continue
    parents.set(Number(name), Number(rest[1]))
  }
  const found: number[] = []
  let frontier = [root]
  while (frontier.length > 0) {
    const next: number[] = []
    for (const [pid, ppid] of parents) if (frontier.includes(ppid)) next.push(pid)
    found.push(...next)
    frontier = next
  }
  return found
}

async function alive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined)
  return stat !== undefined && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z'
}

/** `cohort up` on private servers (never the machine's) in a temp dir, killed when the test ends. */
async function startUp(t: ExecutionContext, workers: number) {
  const dataDir = await mkdtemp(join(tmpdir(), 'cohort-up-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const args = ['up', '--port', '0', '--workers', String(workers), '--threads', '1', '--data-dir', dataDir]
  const up = spawnCohort(args, { REDIS_URL: '', NATS_URL: '', NATS_WS_URL: '' })
  t.teardown(() => up.kill('SIGKILL'))
  const ready = await up.waitForLine(/cohort up: ready/, 120_000)
  return { up, dataDir, ready }
}

interface Status {
  pid: number
  workerId: string
  unitsDone: number
}

test('cohort up restarts a worker killed mid-job with its identity, the job completes, and SIGINT stops everything within the bound', async (t) => {
  const { up, dataDir, ready } = await startUp(t, 2)
  const apiUrl = /API (http:\/\/\S+?),/.exec(ready)?.[1]
  if (apiUrl === undefined) throw new Error(`no API URL in: ${ready}`)
  const pidOf = async (i: number) => {
    const line = await up.waitForLine(new RegExp(`worker ${i} \\(\\S+\\) started, pid (\\d+)`))
    return Number(/pid (\d+)/.exec(line)?.[1])
  }
  const [pidA, pidB] = [await pidOf(0), await pidOf(1)]
  const status = async (i: number): Promise<Status | undefined> => {
    const text = await readFile(join(dataDir, 'workers', `state-${i}`, 'status.json'), 'utf8').catch(() => '')
    return text === '' ? undefined : (JSON.parse(text) as Status)
  }
  const api = connect({ url: apiUrl })

  // Worker B is stopped, so no unit can reach quorum 2: the job is certainly unfinished when A dies,
  // however fast the machine.
  process.kill(pidB, 'SIGSTOP')
  let resumed = false
  t.teardown(() => {
    if (!resumed) process.kill(pidB, 'SIGCONT')
  })
  const first = await api.submit({ type: 'primes', params: { to: 300_000_000 }, redundancy: { quorum: 2 } })
  await waitUntil('worker A to compute a unit', async () => ((await status(0))?.unitsDone ?? 0) > 0, 120_000)
  const idA = (await status(0))?.workerId
  t.is((await api.job(first.id)).state, 'running')
  process.kill(pidA, 'SIGKILL')
  const restarted = await up.waitForLine(
    /worker 0 \(\S+\) restarted with the same identity, pid (\d+)/,
    60_000,
  )
  t.true(
    up.lines.some((l) => /worker 0 \(\S+\) exited unexpectedly \(signal SIGKILL\); restarting it/.test(l)),
  )
  const newPidA = Number(/pid (\d+)/.exec(restarted)?.[1])
  t.not(newPidA, pidA)
  process.kill(pidB, 'SIGCONT')
  resumed = true

  // A second job, submitted after the restart: at quorum 2 with two workers, it completes only if the
  // restarted worker takes part.
  const second = await api.submit({ type: 'primes', params: { to: 20_000_000 }, redundancy: { quorum: 2 } })
  const [doneFirst, doneSecond] = await Promise.all([
    waitForJob(api, first.id, 240_000),
    waitForJob(api, second.id, 240_000),
  ])
  t.is(doneFirst.state, 'completed')
  t.is(doneSecond.state, 'completed')
  t.is(((await api.result(first.id)).result as { count: number }).count, 16_252_325) // π(3·10^8)
  t.is(((await api.result(second.id)).result as { count: number }).count, 1_270_607) // π(2·10^7)
  await waitUntil(
    'the restarted worker to report its units',
    async () => {
      const s = await status(0)
      return s !== undefined && s.pid === newPidA && s.unitsDone > 0
    },
    30_000,
  )
  t.is((await status(0))?.workerId, idA, 'same identity after the restart')

  // SIGINT: every process of the cluster (workers, redis-server, nats-server, up itself) is gone
  // within the bound.
  const family = [up.child.pid ?? -1, ...(await descendants(up.child.pid ?? -1))]
  t.true(family.length >= 5, `up, 2 workers, redis-server, nats-server: ${family.join(' ')}`)
  const started = Date.now()
  up.child.kill('SIGINT')
  await waitUntil(
    'every process of the cluster to exit',
    async () => (await Promise.all(family.map(alive))).every((a) => !a),
    STOP_BOUND_MS + 15_000,
  )
  t.log(`all ${family.length} processes gone ${Date.now() - started} ms after SIGINT`)
})

test('cohort up stops within the bound even when a worker has already died and Redis went first', async (t) => {
  const { up } = await startUp(t, 1)
  const family = [up.child.pid ?? -1, ...(await descendants(up.child.pid ?? -1))]
  const worker = Number(/pid (\d+)/.exec(await up.waitForLine(/worker 0 \(\S+\) started, pid \d+/))?.[1])
  const comms = await Promise.all(family.map((pid) => readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')))
  const redis = family[comms.findIndex((c) => c.trim() === 'redis-server')]
  if (redis === undefined) throw new Error(`no redis-server among ${family.join(' ')}`)
  // What a terminal's Ctrl-C does to the process group, in the worst order: the worker and Redis
  // die before `cohort up` hears its SIGINT.
  process.kill(worker, 'SIGKILL')
  await up.waitForLine(/worker 0 \(\S+\) exited unexpectedly/)
  process.kill(redis, 'SIGINT')
  up.child.kill('SIGINT')
  await waitUntil(
    'every process of the cluster to exit',
    async () => {
      const now = [up.child.pid ?? -1, ...family, ...(await descendants(up.child.pid ?? -1))]
      return (await Promise.all(now.map(alive))).every((a) => !a)
    },
    STOP_BOUND_MS + 15_000,
  )
  t.pass()
})

test('a worker whose cohort up was killed stops by itself; a Ctrl-C reaches cohort up alone, which stops each worker once', async (t) => {
  const { up } = await startUp(t, 1)
  const worker = Number(/pid (\d+)/.exec(await up.waitForLine(/worker 0 \(\S+\) started, pid \d+/))?.[1])
  const family = await descendants(up.child.pid ?? -1)
  t.teardown(() => {
    for (const pid of family) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // gone
      }
    }
  })
  // Workers and servers run in process groups of their own, not in `cohort up`'s.
  const pgid = async (pid: number): Promise<string | undefined> => {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]
  }
  for (const pid of family) t.not(await pgid(pid), await pgid(up.child.pid ?? -1))
  await up.kill('SIGKILL')
  await waitUntil('the orphaned worker to stop by itself', async () => !(await alive(worker)), 60_000)
})
