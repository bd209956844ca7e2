// `cohort worker pause|resume|finish` against a running `cohort worker` process, over its control
// socket: pause stops units from starting and resume starts them again, finish drains and exits 0;
// the socket is owner-only, and links, other users' files, stale and live sockets and malformed
// requests are handled as documented (docs/volunteer.md).
import test from 'ava'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { chown, lstat, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises'
import { createConnection } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { silentLogger } from '../shared/index.js'
import {
  controlSocketPath,
  MAX_CONTROL_LINE,
  startControlSocket,
  UnsafeControlPathError,
  type ControlTarget,
} from '../worker/policy/index.js'
import { spawnCohort, startCluster, waitForJob, type Cluster } from './helpers/cluster.js'
import { useServices } from './helpers/services.js'

const services = useServices(test)

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cohort-control-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** Run `cohort <args>` to its end. */
async function cohort(args: string[]): Promise<{ code: number | null; out: string }> {
  const c = spawnCohort(args)
  const [code] = (await once(c.child, 'exit')) as [number | null]
  // The streams may still hold their last lines.
  for (const stream of [c.child.stdout, c.child.stderr])
    if (stream !== null && !stream.readableEnded) await once(stream, 'end')
  return { code, out: c.lines.join('\n') }
}

function startWorkerProcess(cluster: Cluster, dir: string, ...extra: string[]) {
  const stateDir = join(dir, 'state')
  const w = spawnCohort(cluster.workerArgs(join(dir, 'key.json'), '--state-dir', stateDir, ...extra))
  return { ...w, stateDir }
}

const message = (line: string): { msg?: string; unitId?: string } => {
  try {
    return JSON.parse(line) as { msg?: string; unitId?: string }
  } catch {
    return {}
  }
}
const indexOfMsg = (lines: string[], msg: string, from = 0): number =>
  lines.findIndex((l, i) => i >= from && message(l).msg === msg)
const countMsg = (lines: string[], msg: string, from = 0): number =>
  lines.filter((l, i) => i >= from && message(l).msg === msg).length

test('control - pause stops units from starting and resume starts them again, over the socket', async (t) => {
  const cluster = await startCluster({ services: services(), tuning: { leaseMs: 600_000 } })
  t.teardown(() => cluster.stop())
  const dir = await tempDir(t)
  const w = startWorkerProcess(cluster, dir, '--threads', '1', '--buffer', '2')
  t.teardown(() => w.kill())
  await w.waitForLine(/control socket listening/)
  await w.waitForLine(/worker started/)

  // The socket is owner-only, in an owner-only directory.
  t.is((await lstat(controlSocketPath(w.stateDir))).mode & 0o777, 0o600)
  t.is((await lstat(w.stateDir)).mode & 0o777, 0o700)

  const first = await cluster.api.submit({
    type: 'primes',
    params: { to: 200_000_000, unitSize: 10_000_000 },
    redundancy: { quorum: 1, maxReplicas: 1 },
  })
  await w.waitForLine(/unit started/)
  const paused = await cohort(['worker', 'pause', '--state-dir', w.stateDir])
  t.is(paused.code, 0, paused.out)
  t.regex(paused.out, /worker \(pid \d+\) paused/)
  const pausedAt = indexOfMsg(w.lines, 'worker paused')
  t.true(pausedAt >= 0)
  const status = await cohort(['worker', 'status', '--state-dir', w.stateDir, '--json'])
  t.regex(status.out, /"state": "paused"/)

  // Another worker finishes the first job while this one stays paused: nothing starts here.
  await cluster.addWorker({ threads: 1 })
  t.is((await waitForJob(cluster.api, first.id)).state, 'completed')
  t.is(countMsg(w.lines, 'unit started', pausedAt), 0)

  const resumed = await cohort(['worker', 'resume', '--state-dir', w.stateDir])
  t.is(resumed.code, 0, resumed.out)
  t.regex(resumed.out, /worker \(pid \d+\) running/)
  const resumedAt = indexOfMsg(w.lines, 'worker resumed')
  t.true(resumedAt > pausedAt)
  // At quorum 2 with two workers this job needs the resumed one.
  const second = await cluster.api.submit({ type: 'nqueens', params: { n: 9 } })
  t.is((await waitForJob(cluster.api, second.id)).state, 'completed')
  t.true(countMsg(w.lines, 'unit started', resumedAt) > 0)
})

test('control - finish takes no more work, submits the running units and exits 0', async (t) => {
  const cluster = await startCluster({ services: services(), tuning: { leaseMs: 600_000 } })
  t.teardown(() => cluster.stop())
  const dir = await tempDir(t)
  const w = startWorkerProcess(cluster, dir, '--threads', '1', '--buffer', '0')
  t.teardown(() => w.kill())
  await w.waitForLine(/worker started/)
  const job = await cluster.api.submit({
    type: 'primes',
    params: { to: 2_000_000_000, unitSize: 100_000_000 },
    redundancy: { quorum: 1, maxReplicas: 1 },
  })
  await w.waitForLine(/unit started/)
  const exited = once(w.child, 'exit') as Promise<[number | null]>
  const finished = await cohort(['worker', 'finish', '--state-dir', w.stateDir])
  t.is(finished.code, 0, finished.out)
  t.regex(finished.out, /finishing[\s\S]*exited/)
  const [code] = await exited
  t.is(code, 0)
  const finishingAt = indexOfMsg(
    w.lines,
    'finishing: no new work; running units end and are submitted, then the worker exits',
  )
  t.true(finishingAt >= 0)
  t.is(countMsg(w.lines, 'unit started', finishingAt + 1), 0)
  // Every unit it started was computed and its result stored.
  const started = w.lines.filter((l) => message(l).msg === 'unit started').map((l) => message(l).unitId!)
  t.true(started.length > 0)
  const store = cluster.coordinators[0]!.store
  for (const unitId of started) t.is((await store.unitResults(unitId)).length, 1, unitId)
  // A grant in flight when `finish` arrived is handed straight back, never started: every lease was
  // either started and submitted, or handed back unstarted.
  const { unitsLeased, leasesReleased } = cluster.coordinators[0]!.counters
  t.is(leasesReleased, unitsLeased - started.length)
  t.true(finished.out.includes('exited'))
  await cluster.api.cancel(job.id)
})

const target = (): ControlTarget & { calls: string[] } => {
  const calls: string[] = []
  return {
    calls,
    pause: () => (calls.push('pause'), Promise.resolve()),
    resume: () => void calls.push('resume'),
    finish: () => void calls.push('finish'),
    mode: () => 'running',
  }
}

test('control - a symlinked or foreign socket is refused by the client', async (t) => {
  const dir = await tempDir(t)
  const real = join(dir, 'real')
  const server = await startControlSocket(real, target(), silentLogger)
  t.teardown(() => server.stop())
  // A state directory whose socket is a link to a real one.
  const linked = join(dir, 'linked')
  await mkdir(linked, { mode: 0o700 })
  await symlink(controlSocketPath(real), controlSocketPath(linked))
  const viaLink = await cohort(['worker', 'pause', '--state-dir', linked])
  t.is(viaLink.code, 2)
  t.regex(viaLink.out, /symbolic link: refused/)
  // A state directory that is itself a link.
  const dirLink = join(dir, 'dir-link')
  await symlink(real, dirLink)
  t.regex((await cohort(['worker', 'pause', '--state-dir', dirLink])).out, /symbolic link: refused/)
  if (process.getuid?.() === 0) {
    // Root can hand the socket to another user: the client refuses it.
    await chown(controlSocketPath(real), 65534, 65534)
    const foreign = await cohort(['worker', 'pause', '--state-dir', real])
    t.is(foreign.code, 2)
    t.regex(foreign.out, /belongs to user 65534/)
  }
  const ok = await cohort(['worker', 'resume', '--state-dir', join(dir, 'none')])
  t.regex(ok.out, /no worker state directory/)
})

test('control - the daemon refuses a linked or foreign state, replaces a stale socket, refuses a live one', async (t) => {
  const dir = await tempDir(t)
  // A control socket path that is a link.
  const linked = join(dir, 'linked')
  await mkdir(linked, { mode: 0o700 })
  await symlink(join(dir, 'elsewhere.sock'), controlSocketPath(linked))
  await t.throwsAsync(startControlSocket(linked, target(), silentLogger), {
    instanceOf: UnsafeControlPathError,
    message: /symbolic link/,
  })
  if (process.getuid?.() === 0) {
    const foreign = join(dir, 'foreign')
    await mkdir(foreign, { mode: 0o700 })
    await chown(foreign, 65534, 65534)
    await t.throwsAsync(startControlSocket(foreign, target(), silentLogger), {
      instanceOf: UnsafeControlPathError,
      message: /belongs to user 65534/,
    })
  }
  // A stale socket: its process was killed without removing it.
  const stale = join(dir, 'stale')
  await mkdir(stale, { mode: 0o700 })
  const killed = spawn(process.execPath, [
    '-e',
    `require('node:net').createServer().listen(${JSON.stringify(controlSocketPath(stale))}, () => process.kill(process.pid, 'SIGKILL'))`,
  ])
  await once(killed, 'exit')
  t.true((await lstat(controlSocketPath(stale))).isSocket())
  const server = await startControlSocket(stale, target(), silentLogger)
  t.teardown(() => server.stop())
  // A live one: a second daemon on the same state directory.
  await t.throwsAsync(startControlSocket(stale, target(), silentLogger), {
    instanceOf: UnsafeControlPathError,
    message: /another worker is running/,
  })
})

test('control - malformed and oversized requests are answered with an error', async (t) => {
  const dir = await tempDir(t)
  const tgt = target()
  const server = await startControlSocket(dir, tgt, silentLogger)
  t.teardown(() => server.stop())
  /** Send `payload`, read `lines` reply lines. */
  const exchange = async (payload: string, lines: number): Promise<string[]> => {
    const s = createConnection(server.path)
    let got = ''
    s.setEncoding('utf8')
    const all = new Promise<void>((resolve) =>
      s.on('data', (d: string) => {
        got += d
        if (got.split('\n').length > lines) resolve()
      }),
    )
    s.write(payload)
    await all
    s.destroy()
    return got.trim().split('\n')
  }
  const replies = (
    await exchange('not json\n{"v":1,"cmd":"reboot"}\n{"v":2,"cmd":"pause"}\n{"v":1,"cmd":"pause"}\n', 4)
  ).map((l) => JSON.parse(l) as { ok: boolean; error?: string; mode?: string })
  t.like(replies[0], { ok: false, error: 'the request is not JSON' })
  t.regex(replies[1]!.error!, /^cmd must be one of/)
  t.regex(replies[2]!.error!, /version 2/)
  t.like(replies[3], { ok: true, mode: 'running' })
  t.deepEqual(tgt.calls, ['pause'])
  const [long] = await exchange('x'.repeat(MAX_CONTROL_LINE + 10), 1)
  t.like(JSON.parse(long!), { ok: false, error: 'request too long' })
})
