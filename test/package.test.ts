// The package as users get it: `npm pack` (its prepack builds from the sources alone) makes a tarball
// of built files and declarations; installed in an empty directory, it gives the `cohort` command,
// which runs the demo cluster from the installed files, and `cohort/client` type-checks.
import test from 'ava'
import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { cp, mkdir, mkdtemp, readFile, readdir, realpath, rm, symlink, writeFile } from 'node:fs/promises'
import { connect as netConnect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { spawnLines } from './helpers/line-child.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
/** What `npm pack` must not see from the checkout: its install, its build and local state. */
const LOCAL = new Set(['node_modules', 'dist', '.git', '.cohort', 'test-results'])
/** Development tools that an install of the package must not pull in. */
const DEV_ONLY = ['assemblyscript', 'ava', 'esbuild', 'eslint', 'playwright-core', 'typescript', 'wabt']

interface Run {
  code: number
  stdout: string
  stderr: string
}

function run(command: string, args: string[], cwd: string, timeoutMs: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd, timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : undefined
      if (code === undefined) reject(new Error(`${command} ${args.join(' ')}: ${err?.message}\n${stderr}`))
      else resolve({ code, stdout, stderr })
    })
  })
}

async function ok(command: string, args: string[], cwd: string, timeoutMs: number): Promise<Run> {
  const r = await run(command, args, cwd, timeoutMs)
  if (r.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${r.code}:\n${r.stderr}`)
  return r
}

/** Whether `pid` runs (a zombie counts as gone). */
async function alive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined)
  return stat !== undefined && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z'
}

/** Resolves with the error code of a TCP connection to `url`'s port ('connected' when it opens). */
function dial(url: string): Promise<string> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve) => {
    const socket = netConnect({ host: hostname, port: Number(port) })
    socket.once('connect', () => {
      socket.destroy()
      resolve('connected')
    })
    socket.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message))
  })
}

const CHECK_TS = `import { connect, ApiError, type JobView } from 'cohort/client'
import { connect as connectRoot } from 'cohort'

const client = connect({ url: 'http://127.0.0.1:8080' })
export async function demo(): Promise<number> {
  const job = await client.submit({ type: 'primes', params: { to: 1000 } })
  const { count } = await job.result()
  const views: JobView[] = await connectRoot({ url: 'http://127.0.0.1:8080' }).jobs()
  // @ts-expect-error params are typed from the job type
  await client.submit({ type: 'primes', params: { to: 'many' } })
  return count + views.length + (new ApiError(404, { type: 'job-not-found' }).status === 404 ? 1 : 0)
}
`

test('npm pack makes an installable package: cohort --help, cohort up runs the demo and stops on SIGINT, cohort/client has types', async (t) => {
  t.timeout(170_000)
  const tmp = await mkdtemp(join(tmpdir(), 'cohort-package-'))
  t.teardown(() => rm(tmp, { recursive: true, force: true }))

  // 1. Pack from a copy of the sources with no dist/: the prepack script alone builds what ships.
  const src = join(tmp, 'src')
  await cp(ROOT, src, {
    recursive: true,
    filter: (from) => !LOCAL.has(from.slice(ROOT.length).split('/')[0] ?? ''),
  })
  await symlink(join(ROOT, 'node_modules'), join(src, 'node_modules'))
  let started = Date.now()
  const packed = await ok('npm', ['pack', '--json', '--pack-destination', tmp], src, 120_000)
  const [pack] = JSON.parse(packed.stdout) as { filename: string; size: number; files: { path: string }[] }[]
  if (pack === undefined) throw new Error(`npm pack printed no entry: ${packed.stdout}`)
  const paths = pack.files.map((f) => f.path)
  t.log(`npm pack: ${pack.filename}, ${pack.size} bytes, ${paths.length} files, ${Date.now() - started} ms`)
  for (const needed of [
    'bin/cohort.js',
    'dist/scripts/cohort.js',
    'dist/worker/unit-thread.js',
    'dist/client/index.js',
    'dist/client/index.d.ts',
    'dist/jobs/primes.d.ts',
    'dist/web/page.js',
    'dist/web/unit-worker.js',
    'dist/web/contribute.html',
    'dist/web/dashboard.js',
    'dist/web/dashboard.html',
  ])
    t.true(paths.includes(needed), `${needed} is in the tarball`)
  const stray = paths.filter(
    (p) => /^dist\/(test|bench|examples)\//.test(p) || p.endsWith('.map') || /(?<!\.d)\.ts$/.test(p),
  )
  t.deepEqual(stray, [], 'no tests, benchmarks, source maps or TypeScript sources')

  // 2. Install the tarball in an empty project, from the npm cache when it holds every package.
  await mkdir(join(tmp, 'app'))
  const app = await realpath(join(tmp, 'app'))
  await writeFile(
    join(app, 'package.json'),
    JSON.stringify({
      name: 'app',
      private: true,
      type: 'module',
      allowScripts: { 'msgpackr-extract': false },
    }),
  )
  const tarball = join(tmp, pack.filename)
  started = Date.now()
  const install = ['install', '--no-audit', '--no-fund', tarball]
  let installed = await run('npm', [...install, '--offline'], app, 120_000)
  if (installed.code !== 0 && installed.stderr.includes('ENOTCACHED')) {
    t.log('npm install --offline: a package is not in the cache; installing with --prefer-offline')
    installed = await run('npm', [...install, '--prefer-offline'], app, 120_000)
  }
  t.is(installed.code, 0, installed.stderr)
  t.log(`npm install: ${Date.now() - started} ms`)
  const modules = await readdir(join(app, 'node_modules'))
  t.deepEqual(
    DEV_ONLY.filter((name) => modules.includes(name)),
    [],
    'no development tools installed',
  )

  // 3. The command, from the installed files.
  const help = await ok('npx', ['--no-install', 'cohort', '--help'], app, 30_000)
  t.regex(help.stdout, /^Usage: cohort/m)
  for (const command of ['up', 'worker', 'submit', 'coordinator'])
    t.regex(help.stdout, new RegExp(`^  ${command} `, 'm'))

  // 4. `cohort up` on private servers: the demo job completes, workers run the installed CLI, and a
  // terminal's Ctrl-C (SIGINT to the process group) stops everything, exit code 0. Started through
  // the bin link npx runs, not npx itself: npx waits for the command, then re-raises the SIGINT it
  // got on itself, which would hide the command's own exit code.
  started = Date.now()
  const up = spawnLines(
    join(app, 'node_modules', '.bin', 'cohort'),
    ['up', '--demo', '--port', '0', '--workers', '2', '--threads', '1', '--data-dir', join(app, 'data')],
    { cwd: app, detached: true, env: { ...process.env, REDIS_URL: '', NATS_URL: '', NATS_WS_URL: '' } },
  )
  const group = up.child.pid ?? -1
  t.teardown(() => {
    if (up.child.exitCode === null && up.child.signalCode === null) process.kill(-group, 'SIGKILL')
  })
  const ready = await up.waitForLine(/cohort up: ready/, 60_000)
  const redisUrl = /Redis (redis:\/\/\S+?),/.exec(ready)?.[1]
  const natsUrl = /NATS (nats:\/\/\S+?),/.exec(ready)?.[1]
  if (redisUrl === undefined || natsUrl === undefined) throw new Error(`no server URLs in: ${ready}`)
  const workers = up.lines
    .flatMap((l) => /worker \d \(\S+\) started, pid (\d+)/.exec(l)?.[1] ?? [])
    .map(Number)
  t.is(workers.length, 2)
  for (const pid of workers) {
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0')
    t.true(argv.includes(join(app, 'node_modules', 'cohort', 'bin', 'cohort.js')), argv.join(' '))
    t.true(argv.includes('worker') && argv.includes('--trust'), argv.join(' '))
  }
  const result = await up.waitForLine(/^demo: π\(10\^9\) = /, 120_000)
  t.regex(result, /= 50847534 .* matches the published value/)
  await up.waitForLine(/cluster still running/, 10_000)
  const exited = once(up.child, 'exit')
  process.kill(-group, 'SIGINT')
  const [code, signal] = (await exited) as [number | null, NodeJS.Signals | null]
  t.is(signal, null)
  t.is(code, 0, up.lines.slice(-10).join('\n'))
  t.true(up.lines.some((l) => /SIGINT: shutting down/.test(l)))
  const running = await Promise.all(workers.map(alive))
  t.deepEqual(
    workers.filter((_, i) => running[i]),
    [],
    'workers stopped',
  )
  t.is(await dial(redisUrl), 'ECONNREFUSED', 'redis-server stopped')
  t.is(await dial(natsUrl), 'ECONNREFUSED', 'nats-server stopped')
  t.log(`cohort up: demo and stop in ${Date.now() - started} ms`)

  // 5. `cohort/client` (and the package root) resolve with declarations: typed params and results
  // type-check, wrong params do not (the @ts-expect-error line), with the declarations checked too.
  await writeFile(join(app, 'check.ts'), CHECK_TS)
  await writeFile(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'es2022',
        lib: ['es2023', 'dom'],
        types: [],
      },
      files: ['check.ts'],
    }),
  )
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
  started = Date.now()
  const checked = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], app, 90_000)
  t.is(checked.code, 0, checked.stdout + checked.stderr)
  t.log(`tsc on the installed declarations: ${Date.now() - started} ms`)
})
