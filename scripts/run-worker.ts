// `cohort worker`: the volunteer daemon as a process (identity file, NATS session, thread pool).
import { connect } from '@nats-io/transport-node'
import type { NatsConnection } from '@nats-io/nats-core'
import { existsSync } from 'node:fs'
import { availableParallelism, homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { builtinJobTypes } from '../jobs/index.js'
import {
  ConfigError,
  errorFields,
  inboxPrefixFor,
  natsServers,
  type Identity,
  type Logger,
} from '../shared/index.js'
import {
  connectWithCredentials,
  createCredentialFile,
  createPoolRunner,
  createStandingPoller,
  createVolunteerCredentials,
  createWorkerDaemon,
  credentialFileFor,
  loadOrCreateIdentity,
  type VolunteerCredentials,
  type TrustedKeys,
  type WorkerDaemon,
} from '../worker/index.js'
import {
  createGuest,
  createMachineProbes,
  policyThreads,
  resolvePolicy,
  startControlSocket,
  type ControlSocket,
  type Guest,
  type GuestPolicy,
  type MachineProbes,
} from '../worker/policy/index.js'
import { parseTrusted } from './coordinator-key.js'

export interface RunWorkerOptions {
  natsUrl: string | undefined
  natsUser?: string | undefined
  natsPass?: string | undefined
  /**
   * A coordinator's HTTP API: the worker signs up there for NATS credentials of its own, kept beside
   * the key file (`<key>.nats.json`, mode 0600) and renewed before they expire.
   */
  coordinatorUrl?: string | undefined
  keyFile: string
  /**
   * An owner key file (`cohort owner-key`): the identity is linked to that owner at sign-up, and
   * never gets two replicas of a unit with the owner's other identities. Must exist.
   */
  ownerKeyFile?: string | undefined
  trust: string[]
  threads?: number | undefined
  bufferUnits?: number | undefined
  subjectPrefix?: string
  log: Logger
  /** The volunteer's policy (scripts/worker-config.ts); default: worker/policy defaults. */
  policy?: GuestPolicy
  /** How often the coordinator's record of this identity is read for the status file, ms (default 30 s). */
  standingEveryMs?: number
  /** Checkpoints and status.json; default `worker-state` beside the key file. */
  stateDir?: string
  /**
   * What the idle policy reads of the machine (other programs' CPU use, input idle time, battery);
   * default this platform's probes. Tests give their own to decide what counts as other load.
   */
  probes?: MachineProbes
  /**
   * `cohort worker finish` came over the control socket: the process should now call
   * `stop({ finish: true })` and exit. Default: finish and stop here (no process to exit).
   */
  onFinish?: () => void
}

/** How long `finish` lets running units take to end before they are handed back. */
export const FINISH_DRAIN_MS = 6 * 3600_000

export interface RunningWorker {
  daemon: WorkerDaemon
  /** The control socket's path (`cohort worker pause|resume|finish`). */
  controlPath: string
  /**
   * Stop: buffered units go back at once; running ones get the daemon's drain time (`finish`: up to
   * FINISH_DRAIN_MS, and they are not handed back for a policy pause).
   */
  stop(options?: { finish?: boolean }): Promise<void>
}

export function defaultWorkerKeyFile(): string {
  return join(homedir(), '.cohort', 'worker-key.json')
}

export function defaultOwnerKeyFile(): string {
  return join(homedir(), '.cohort', 'owner-key.json')
}

/** The owner key at `path`; it must exist (a typo must not make a new owner of each machine). */
async function loadOwnerKey(path: string): Promise<Identity> {
  if (!existsSync(path))
    throw new ConfigError(
      `owner key file ${path} does not exist: create it with \`cohort owner-key --file ${path}\``,
    )
  return (await loadOrCreateIdentity(path)).identity
}

export async function startWorker(o: RunWorkerOptions): Promise<RunningWorker> {
  if (o.natsUrl === undefined) throw new ConfigError('no NATS: pass --nats-url or set NATS_URL')
  const trusted = await parseTrusted(o.trust)
  const stateDir = o.stateDir ?? join(dirname(o.keyFile), 'worker-state')
  // First, so that a second daemon on the same state directory is refused before it takes any work.
  let running: RunningWorker | undefined
  let finishing = false
  const started = (): RunningWorker => {
    if (running === undefined) throw new ConfigError('the worker is still starting')
    return running
  }
  const control = await startControlSocket(
    stateDir,
    {
      pause: () => started().daemon.pause(),
      resume: () => started().daemon.resume(),
      finish() {
        const w = started()
        if (finishing) return
        finishing = true
        o.log.info('finishing: no new work; running units end and are submitted, then the worker exits')
        if (o.onFinish !== undefined) o.onFinish()
        else void w.stop({ finish: true })
      },
      mode: () => (finishing ? 'finishing' : running?.daemon.paused === true ? 'paused' : 'running'),
    },
    o.log.child('control'),
  )
  try {
    running = await startDaemon(o, trusted, stateDir, control)
    return running
  } catch (err) {
    await control.stop()
    throw err
  }
}

/** The daemon of `startWorker`, once its control socket listens. */
async function startDaemon(
  o: RunWorkerOptions,
  trusted: TrustedKeys,
  stateDir: string,
  control: ControlSocket,
): Promise<RunningWorker> {
  const { identity, created } = await loadOrCreateIdentity(o.keyFile)
  if (created) o.log.info('created a new worker identity', { keyFile: o.keyFile, id: identity.id })
  const owner = o.ownerKeyFile === undefined ? undefined : await loadOwnerKey(o.ownerKeyFile)
  const natsUrl = o.natsUrl
  if (natsUrl === undefined) throw new ConfigError('no NATS: pass --nats-url or set NATS_URL')
  const options = {
    servers: natsServers(natsUrl),
    name: `cohort-worker-${identity.id.slice(0, 8)}`,
    inboxPrefix: inboxPrefixFor(identity.id),
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
  }
  let credentials: VolunteerCredentials | undefined
  let nats: NatsConnection
  if (o.coordinatorUrl !== undefined) {
    const credentialFile = credentialFileFor(o.keyFile)
    const creds = createVolunteerCredentials({
      coordinatorUrl: o.coordinatorUrl,
      identity,
      store: createCredentialFile(credentialFile),
      log: o.log.child('signup'),
      signup: {
        onPow: (p) => o.log.info('proof of work done', p),
        ...(owner === undefined ? {} : { owner }),
      },
    })
    credentials = creds
    nats = await connectWithCredentials(creds, (authenticator) =>
      // Keep trying through refusals: the credentials renew themselves meanwhile.
      connect({ ...options, authenticator, ignoreAuthErrorAbort: true }),
    ).catch((err: unknown) => {
      creds.stop()
      throw err
    })
  } else {
    nats = await connect({
      ...options,
      ...(o.natsUser === undefined ? {} : { user: o.natsUser, pass: o.natsPass ?? '' }),
    })
  }
  void (async () => {
    for await (const s of nats.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnect') o.log.info(`nats ${s.type}`)
    }
  })().catch((err: unknown) => o.log.debug('nats status stream ended', errorFields(err)))
  const policy = o.policy ?? resolvePolicy(o.threads === undefined ? {} : { cpu: { threads: o.threads } })
  const threads = policyThreads(policy, availableParallelism())
  const standing =
    o.coordinatorUrl === undefined
      ? undefined
      : createStandingPoller({
          coordinatorUrl: o.coordinatorUrl,
          id: identity.id,
          log: o.log.child('standing'),
        })
  const guest: Guest = createGuest({
    ...(standing === undefined ? {} : { standing: () => standing.last }),
    policy,
    threads,
    probes: o.probes ?? createMachineProbes(),
    stateDir,
    log: o.log,
  })
  const daemon = createWorkerDaemon({
    nats,
    identity,
    trusted,
    guest: guest.hooks,
    runner: createPoolRunner({ threads, maxHeapMb: policy.memory.unitMb, control: guest.control }),
    jobTypes: builtinJobTypes.values(),
    log: o.log,
    ...(o.subjectPrefix === undefined ? {} : { subjectPrefix: o.subjectPrefix }),
    ...(o.bufferUnits === undefined ? {} : { bufferUnits: o.bufferUnits }),
    peers: policy.peers.enabled
      ? { cacheBytes: policy.peers.cacheMb * 1024 * 1024, steal: policy.peers.steal }
      : false,
  })
  daemon.start()
  standing?.start()
  let stopped: Promise<void> | undefined
  const stop = (options: { finish?: boolean } = {}): Promise<void> =>
    (stopped ??= (async () => {
      await control.stop()
      // Paused units are not woken to finish against the policy: they go back at once (unless the
      // volunteer asked to finish them: then they end when the policy lets them).
      await daemon.stop(
        options.finish === true
          ? { drainTimeoutMs: FINISH_DRAIN_MS }
          : guest.control.paused
            ? { drainTimeoutMs: 0 }
            : {},
      )
      standing?.stop()
      await guest.stop()
      credentials?.stop()
      await nats.drain().catch(() => nats.close())
    })())
  return { daemon, controlPath: control.path, stop }
}
