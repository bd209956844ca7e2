// Test helper: one private Redis + NATS per test file, in a fresh temp dir, never the machine's defaults.
import type { TestFn } from 'ava'
import { jwtAuthenticator, type Authenticator } from '@nats-io/nats-core'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startServices, type Services } from '../../scripts/services.js'

export interface TestServices extends Services {
  /** The temp dir holding the servers' data; removed by stop(). */
  dataDir: string
}

/** A name prefix no other test (in this or another process) uses: for queues, subjects, streams, keys. */
export function uniquePrefix(label = 't'): string {
  return `${label}-${process.pid}-${randomBytes(4).toString('hex')}`
}

/**
 * Starts a private Redis and NATS on free ports. Environment variables such as REDIS_URL are ignored on
 * purpose. Call `test.after.always(() => services.stop())`.
 */
export async function startTestServices(opts: { websocket?: boolean } = {}): Promise<TestServices> {
  const dataDir = await mkdtemp(join(tmpdir(), 'cohort-test-'))
  const lines: string[] = []
  const log = (line: string) => {
    lines.push(line)
    if (process.env.COHORT_TEST_LOG) console.error(`[services] ${line}`)
  }
  let services: Services
  try {
    services = await startServices({ dataDir, log, websocket: opts.websocket ?? true })
  } catch (err) {
    await rm(dataDir, { recursive: true, force: true })
    throw new Error(`could not start test services:\n${lines.join('\n')}`, { cause: err })
  }
  const stopServers = services.stop.bind(services)
  return Object.assign(services, {
    dataDir,
    async stop() {
      await stopServers()
      await rm(dataDir, { recursive: true, force: true })
    },
  })
}

/** Registers before/after hooks on `test` and returns a getter for the services they start. */
export function useServices<Context>(
  test: TestFn<Context>,
  opts: { websocket?: boolean } = {},
): () => TestServices {
  let services: TestServices | undefined
  test.before(async () => {
    services = await startTestServices(opts)
  })
  test.after.always(async () => {
    await services?.stop()
  })
  return () => {
    if (services === undefined) throw new Error('useServices: the services have not started (before hook)')
    return services
  }
}

/** Connection options with the coordinators' full permissions on a private nats-server. */
export function asCoordinator(services: Services): { servers: string; authenticator?: Authenticator } {
  const c = services.natsCoordinator
  return c === undefined
    ? { servers: services.natsUrl }
    : { servers: services.natsUrl, authenticator: jwtAuthenticator(c.jwt, new TextEncoder().encode(c.seed)) }
}
