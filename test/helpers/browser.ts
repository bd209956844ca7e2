// Test helper: one headless Chromium per test file and contribute tabs on it. Each tab gets its own
// browser context (its own IndexedDB, so its own contributor identity) unless one is given.
import type { TestFn } from 'ava'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { launchChromium } from '../../scripts/chromium.js'
import type { PageSnapshot } from '../../web-worker/index.js'
import { waitUntil } from './cluster.js'

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
}

export interface OpenOptions {
  /** Reuse a context (same IndexedDB, so the same identity). */
  context?: BrowserContext
  /** Runs on the new context before the page loads (routes, init scripts). */
  setup?: (context: BrowserContext) => Promise<void>
}

export async function openContribute(
  browser: Browser,
  baseUrl: string,
  opts: OpenOptions = {},
): Promise<ContributeTab> {
  const context = opts.context ?? (await browser.newContext())
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
  return {
    page,
    context,
    problems,
    snapshot,
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
