// Contribute page serving: strict headers, the config the page needs, clear errors for bad options,
// unknown files, other methods and a missing build.
import test from 'ava'
import Koa from 'koa'
import { mkdtemp, rm } from 'node:fs/promises'
import { get } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { contributeMiddleware, createCoordinator, type ContributeInit } from '../coordinator/index.js'
import { problemMiddleware } from '../coordinator/http/http-error.js'
import { builtinJobTypes } from '../jobs/index.js'
import { ConfigError, generateIdentity, parseContributeConfig, silentLogger } from '../shared/index.js'

async function serve(t: { teardown(f: () => Promise<void>): void }, init: ContributeInit): Promise<string> {
  const app = new Koa()
  app.use(problemMiddleware(silentLogger, () => {}))
  app.use(contributeMiddleware(init))
  const server = app.listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** Status of a conditional GET (fetch() would add Cache-Control: no-cache, which defeats it). */
function conditionalStatus(url: string, etag: string): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    get(url, { headers: { 'if-none-match': etag } }, (res) => {
      res.resume()
      resolve(res.statusCode)
    }).on('error', reject)
  })
}

const key = async (): Promise<string> => (await generateIdentity(false)).id

test('contribute - page, bundles and config are served with a strict Content-Security-Policy', async (t) => {
  const trust = [await key()]
  const url = await serve(t, { natsWsUrl: 'ws://127.0.0.1:4443', subjectPrefix: 'demo', trust })
  const page = await fetch(`${url}/contribute`)
  t.is(page.status, 200)
  t.regex(page.headers.get('content-type') ?? '', /text\/html/)
  const csp = page.headers.get('content-security-policy') ?? ''
  t.regex(csp, /default-src 'none'/)
  // 'wasm-unsafe-eval' lets Web Workers compile WebAssembly jobs, and nothing else.
  t.regex(csp, /script-src 'self' 'wasm-unsafe-eval'(;|$)/)
  t.regex(csp, /connect-src 'self' ws:\/\/127\.0\.0\.1:4443(;|$)/)
  t.notRegex(csp, /unsafe-inline|(?<!wasm-)unsafe-eval/)
  t.regex(await page.text(), /<script type="module" src="\/contribute\/app\.js">/)
  for (const path of ['/contribute/app.js', '/contribute/unit-worker.js']) {
    const r = await fetch(`${url}${path}`)
    t.is(r.status, 200, path)
    t.regex(r.headers.get('content-type') ?? '', /text\/javascript/)
    t.is(await conditionalStatus(`${url}${path}`, r.headers.get('etag') ?? ''), 304, `${path} revalidates`)
  }
  const config = parseContributeConfig(await (await fetch(`${url}/contribute/config.json`)).json())
  t.deepEqual(config, { natsWsUrl: 'ws://127.0.0.1:4443', subjectPrefix: 'demo', trust })
})

test('contribute - unknown files are 404 and other methods 405, as problem+json', async (t) => {
  const url = await serve(t, {
    natsWsUrl: 'ws://127.0.0.1:4443',
    subjectPrefix: 'cohort',
    trust: [await key()],
  })
  const missing = await fetch(`${url}/contribute/secrets.txt`)
  t.is(missing.status, 404)
  t.is(missing.headers.get('content-type'), 'application/problem+json')
  t.is((await fetch(`${url}/contribute`, { method: 'POST' })).status, 405)
})

test('contribute - a missing build is a 503 that says to run npm run build', async (t) => {
  const empty = await mkdtemp(join(tmpdir(), 'cohort-web-'))
  t.teardown(() => rm(empty, { recursive: true, force: true }))
  const url = await serve(t, {
    natsWsUrl: 'ws://127.0.0.1:4443',
    subjectPrefix: 'cohort',
    trust: [await key()],
    webDir: empty,
  })
  const r = await fetch(`${url}/contribute/app.js`)
  t.is(r.status, 503)
  t.regex(((await r.json()) as { detail: string }).detail, /npm run build/)
})

test('contribute - a coordinator refuses a NATS WebSocket URL that is not ws:// or wss://', async (t) => {
  const identity = await generateIdentity(false)
  const make = (natsWsUrl: string) => () =>
    createCoordinator({
      redisUrl: 'redis://127.0.0.1:1',
      natsUrl: 'nats://127.0.0.1:1',
      identity,
      jobTypes: builtinJobTypes.values(),
      log: silentLogger,
      contribute: { natsWsUrl },
    })
  t.throws(make('127.0.0.1:4443'), {
    instanceOf: ConfigError,
    message: /contribute\.natsWsUrl must be a full URL/,
  })
  t.throws(make('http://127.0.0.1:4443'), {
    instanceOf: ConfigError,
    message: /contribute\.natsWsUrl must be a ws/,
  })
  t.throws(() => contributeMiddleware({ natsWsUrl: 'ws://h:1', subjectPrefix: 'cohort', trust: [] }), {
    instanceOf: ConfigError,
    message: /contribute\.trust/,
  })
})
