// The contribute page's entry, bundled to dist/web/page.js and served as /contribute/app.js: loads
// the coordinator's config and this browser's identity, then wires the contributor to the view.
import { wsconnect } from '@nats-io/nats-core'
import { builtinJobTypes } from '../jobs/index.js'
import { createLogger, errorFields, parseContributeConfig, type UnitPayload } from '../shared/index.js'
import { createComlinkRunner } from './comlink-runner.js'
import { createContributor, type Contributor } from './contributor.js'
import { createBrowserCredentialStore, loadOrCreateBrowserIdentity } from './identity-store.js'
import { createStandingPoller, createVolunteerCredentials } from '../worker/portable.js'
import { createPageHandle } from './page-handle.js'
import { pieceOf, type Piece } from './piece-canvas.js'
import { batteryLow, watchBattery, watchVisibility, type BatteryReading } from './power-policy.js'
import { loadSettings, loadTotals, saveSettings, saveTotals } from './settings.js'
import { bindView } from './view.js'

const storage = ((): Storage | undefined => {
  try {
    return window.localStorage
  } catch {
    return undefined
  }
})()
const cores = Math.max(1, navigator.hardwareConcurrency || 1)
const settings = loadSettings(storage, cores)
const totals = loadTotals(storage)
let contributor: Contributor | undefined
let battery: BatteryReading | undefined
let hidden = false

const view = bindView(document, {
  toggle() {
    const c = contributor
    if (c === undefined) return
    if (c.state === 'idle' || c.state === 'failed' || c.reasons.has('user')) c.start()
    else c.pause()
  },
  threads(n) {
    settings.threads = n
    saveSettings(storage, settings)
    contributor?.setThreads(n)
  },
  pauseWhenHidden(on) {
    settings.pauseWhenHidden = on
    saveSettings(storage, settings)
    contributor?.setPaused('hidden', hidden && on)
  },
  batteryThreshold(percent) {
    settings.batteryThreshold = percent
    saveSettings(storage, settings)
    contributor?.setPaused('battery', batteryLow(battery, percent))
  },
})
const log = createLogger('contribute', (r) => view.log(r))

async function main(): Promise<void> {
  const response = await fetch(new URL('config.json', import.meta.url), { cache: 'no-store' })
  if (!response.ok) throw new Error(`config.json answered ${response.status}`)
  const config = parseContributeConfig(await response.json())
  const { identity, created } = await loadOrCreateBrowserIdentity()
  log.info(created ? 'created a new contributor identity' : 'welcome back', { id: identity.id })

  const workerUrl = new URL('unit-worker.js', import.meta.url)
  const runner = createComlinkRunner({ workerUrl, threads: settings.threads })
  const c = createContributor({
    config,
    identity,
    runner,
    jobTypes: builtinJobTypes.values(),
    log,
    // Sign-up is on this page's own origin (the coordinator that serves it), allowed by its CSP.
    credentials: createVolunteerCredentials({
      coordinatorUrl: new URL('../', import.meta.url).href,
      identity,
      store: createBrowserCredentialStore(),
      log: log.child('signup'),
      signup: { onPow: (p) => log.info('proof of work done', p) },
    }),
    connect: (url, name, inboxPrefix, authenticator) =>
      wsconnect({
        servers: url,
        name,
        inboxPrefix,
        authenticator,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 1000,
        ignoreAuthErrorAbort: true,
      }),
    locks: navigator.locks,
  })
  contributor = c
  // The coordinator's record of this identity: the credit the leaderboard shows, read on this page's
  // own origin every 15 s and after results (at most every 2 s).
  const standing = createStandingPoller({
    coordinatorUrl: new URL('../', import.meta.url).href,
    id: identity.id,
    log: log.child('standing'),
    everyMs: 15_000,
    onRead: () => render(),
  })
  let standingAt = 0
  const readStanding = (): void => {
    if (Date.now() - standingAt < 2_000) return
    standingAt = Date.now()
    void standing.refresh()
  }
  let piece: Piece | undefined
  let kind: string | undefined
  let counted = { units: 0, computeMs: 0 }
  const render = (): void =>
    view.render({
      id: identity.id,
      state: c.state,
      reasons: c.reasons,
      stats: c.stats,
      kind,
      piece,
      totals,
      settings,
      cores,
      battery,
      standing: standing.last?.record,
    })

  c.on('change', render)
  // Once signed up and connected, the coordinator knows this identity (before, it answers 404).
  c.on('change', () => {
    if (c.state === 'running') standing.start()
  })
  addEventListener('pagehide', () => standing.stop())
  c.on('refused', render)
  c.on('started', (unit: UnitPayload) => {
    kind = unit.kind
    piece = pieceOf(unit)
    render()
  })
  c.on('result', () => {
    readStanding()
    const s = c.stats
    if (s !== undefined) {
      totals.units += s.unitsDone - counted.units
      totals.computeMs += s.computeMs - counted.computeMs
      counted = { units: s.unitsDone, computeMs: s.computeMs }
      saveTotals(storage, totals)
    }
    render()
  })
  watchVisibility(document, (h) => {
    hidden = h
    c.setPaused('hidden', h && settings.pauseWhenHidden)
  })
  watchBattery(navigator, (reading) => {
    battery = reading
    c.setPaused('battery', batteryLow(reading, settings.batteryThreshold))
    render()
  }).catch((err: unknown) => log.debug('no battery status', errorFields(err)))
  addEventListener('pagehide', () => c.leave())
  // A page restored from the back/forward cache has left the network: start over.
  addEventListener('pageshow', (e) => {
    if (e.persisted) location.reload()
  })
  window.cohort = createPageHandle(
    identity.id,
    () => ({
      id: identity.id,
      state: c.state,
      reasons: [...c.reasons],
      threads: runner.threads,
      stats: c.stats === undefined ? undefined : { ...c.stats },
      kind,
      peers: c.peers,
    }),
    workerUrl,
  )
  render()
}

main().catch((err: unknown) => {
  log.error('the page could not start', errorFields(err))
  view.fatal(
    err instanceof DOMException && err.name === 'NotSupportedError'
      ? 'This browser cannot sign with Ed25519 (WebCrypto): try a current Chrome, Edge, Firefox or Safari.'
      : `The page could not start: ${err instanceof Error ? err.message : String(err)}`,
  )
})
