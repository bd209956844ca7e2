// `cohort nats-setup`: the NATS trust chain for a deployment on an external nats-server, as files an
// operator includes in the server's configuration and hands to coordinators.
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createNatsTrust, credsFile, issueCoordinatorUser, trustConfigLines } from '../coordinator/index.js'
import { CohortError } from '../shared/index.js'

export interface NatsSetupFiles {
  /** `include` this in nats-server's configuration: operator, system account, resolver. */
  serverConfig: string
  /** Coordinators' login (NATS_CREDS). */
  coordinatorCreds: string
  /** The Cohort account's seed (COHORT_NATS_ACCOUNT_SEED_FILE): coordinators issue volunteers' JWTs with it. */
  accountSeed: string
  /** The operator's seed: keep it offline; nothing running needs it. */
  operatorSeed: string
}

/** Writes a fresh trust chain into `dir` (mode 0600 files); refuses to overwrite existing files. */
export async function writeNatsSetup(dir: string): Promise<NatsSetupFiles> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const trust = createNatsTrust()
  const coordinator = issueCoordinatorUser(trust.account.seed)
  const files: NatsSetupFiles = {
    serverConfig: join(dir, 'nats-auth.conf'),
    coordinatorCreds: join(dir, 'coordinator.creds'),
    accountSeed: join(dir, 'account.nk'),
    operatorSeed: join(dir, 'operator.nk'),
  }
  const contents: [string, string][] = [
    [
      files.serverConfig,
      `# Cohort's NATS trust chain (cohort nats-setup)\n${trustConfigLines(trust).join('\n')}\n`,
    ],
    [files.coordinatorCreds, credsFile(coordinator.jwt, coordinator.seed)],
    [files.accountSeed, `${trust.account.seed}\n`],
    [files.operatorSeed, `${trust.operatorSeed}\n`],
  ]
  for (const [file, text] of contents) {
    await writeFile(file, text, { mode: 0o600, flag: 'wx' }).catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST')
        throw new CohortError(
          `${file} exists; nats-setup never overwrites a trust chain (choose another --out)`,
        )
      throw err
    })
  }
  return files
}
