// Test helper: one headless Chromium per test file and contribute tabs on it. Each tab gets its own
// browser context (its own IndexedDB, so its own contributor identity) unless one is given. A tab
// opened with `gate: true` runs its units behind a gate the test opens (see UnitGate).
import type { TestFn } from 'ava'
import { build } from 'esbuild'
import { fileURLToPath } from 'node:url'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { launchChromium } from '../../scripts/chromium.js'
import type { PageSnapshot } from '../../web-worker/index.js'
import { waitUntil } from './cluster.js'
import { GATE_CHANNEL, type GateMessage } from './gate-channel.js'

/** Registers before/after hooks on `test` and returns a getter for the browser they launch. */
export function useBrowser<Context>(test: TestFn<Context>): () => Browser {
  let browser: Browser | undefined
  test.before(async () => {
    browser = await launchChromium()
  })
  test.after.always(async () => {
    await browser?.close()
  })
  return () => {
    if (browser === undefined) throw new Error('useBrowser: Chromium has not started (before hook)')
    return browser
  }
}

export interface ContributeTab {
  page: Page
  context: BrowserContext
  /** Console errors (CSP violations among them) and uncaught page errors, as they happen. */
  problems: string[]
  snapshot(): Promise<PageSnapshot>
  /** Poll the page's snapshot until `predicate` holds. */
  waitFor(what: string, predicate: (s: PageSnapshot) => boolean, timeoutMs?: number): Promise<PageSnapshot>
  /** Close the tab (pagehide runs) and its context. */
  close(): Promise<void>
  /** With `gate: true`: the gate in front of the tab's units. */
  gate: UnitGate | undefined
}

/**
 * A gate in front of every unit of a tab: its Web Workers are served test/helpers/gated-unit-worker.ts
 * instead of the page's own, which runs the same runUnit once the gate is open. Until then a unit the
 * tab started stays running, however fast the machine: the test acts while it is known to run.
 */
export interface UnitGate {
  /** Units that reached the gate so far (in this tab, or in any tab of its origin in the same context). */
  arrived(): Promise<number>
  /** Let every waiting and later unit run. */
  open(): Promise<void>
}

export interface OpenOptions {
  /** Reuse a context (same IndexedDB, so the same identity). */
  context?: BrowserContext
  /** Runs on the new context before the page loads (routes, init scripts). */
  setup?: (context: BrowserContext) => Promise<void>
  /** Hold every unit at a gate until the test opens it (UnitGate). */
  gate?: boolean
}

interface GateKeeper {
  open(): void
  arrived(): number
}

let gatedWorker: Promise<string> | undefined

/** The gated unit Web Worker, bundled for the browser once per test process. */
function gatedWorkerScript(): Promise<string> {
  gatedWorker ??= build({
    entryPoints: [fileURLToPath(new URL('./gated-unit-worker.js', import.meta.url))],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'chrome120',
    write: false,
    logLevel: 'warning',
  }).then((r) => r.outputFiles[0]!.text)
  return gatedWorker
}

/** Serve the gated unit worker to `context`, and give its pages a keeper of the gate. */
async function installGate(context: BrowserContext): Promise<void> {
  const script = await gatedWorkerScript()
  await context.route('**/contribute/unit-worker.js', (route) =>
    route.fulfill({ contentType: 'text/javascript', body: script }),
  )
  await context.addInitScript((name: string) => {
    const channel = new BroadcastChannel(name)
    let opened = false
    let arrived = 0
    channel.onmessage = (e: MessageEvent<GateMessage>) => {
      if (e.data !== 'waiting') return
      arrived++
      // A unit reaching the gate after it opened (a Web Worker started later) goes on at once.
      if (opened) channel.postMessage('open' satisfies GateMessage)
    }
    const keeper: GateKeeper = {
      open() {
        opened = true
        channel.postMessage('open' satisfies GateMessage)
      },
      arrived: () => arrived,
    }
    Object.defineProperty(window, 'cohortTestGate', { value: keeper })
  }, GATE_CHANNEL)
}

export async function openContribute(
  browser: Browser,
  baseUrl: string,
  opts: OpenOptions = {},
): Promise<ContributeTab> {
  const context = opts.context ?? (await browser.newContext())
  if (opts.gate === true) await installGate(context)
  await opts.setup?.(context)
  const page = await context.newPage()
  const problems: string[] = []
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`)
  })
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`))
  await page.goto(`${baseUrl}/contribute`)
  await page.waitForFunction(() => window.cohort !== undefined, null, { timeout: 15_000 })
  const snapshot = async (): Promise<PageSnapshot> => {
    const s = await page.evaluate(() => window.cohort?.snapshot())
    if (s === undefined) throw new Error('the page has no window.cohort')
    return s
  }
  // Functions given to page.evaluate run in the page: they reach the keeper through `window`.
  const gate: UnitGate | undefined =
    opts.gate === true
      ? {
          arrived: () =>
            page.evaluate(() =>
              (window as unknown as { cohortTestGate: GateKeeper }).cohortTestGate.arrived(),
            ),
          open: () =>
            page.evaluate(() => (window as unknown as { cohortTestGate: GateKeeper }).cohortTestGate.open()),
        }
      : undefined
  return {
    page,
    context,
    problems,
    snapshot,
    gate,
    async waitFor(what, predicate, timeoutMs = 60_000) {
      let last: PageSnapshot | undefined
      await waitUntil(what, async () => predicate((last = await snapshot())), timeoutMs).catch(
        (err: unknown) => {
          throw new Error(`${(err as Error).message}; last snapshot ${JSON.stringify(last)}`)
        },
      )
      return last as PageSnapshot
    },
    async close() {
      if (!page.isClosed()) await page.close()
      if (opts.context === undefined) await context.close()
    },
  }
}

/**
 * A page at `url` in a context of its own (closed at the test's end), with the console errors and
 * page errors it meets collected in `problems`.
 */
export async function openPage(
  t: { teardown(fn: () => Promise<void>): void },
  browser: Browser,
  url: string,
  viewport = { width: 1280, height: 900 },
): Promise<{ page: Page; problems: string[] }> {
  const context = await browser.newContext({ viewport })
  t.teardown(() => context.close())
  const page = await context.newPage()
  const problems: string[] = []
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(m.text())
  })
  page.on('pageerror', (e) => problems.push(e.message))
  await page.goto(url)
  return { page, problems }
}
