// The worker's policy, from defaults < config file < environment < flags, each layer validated with
// errors that name the file or flag and the field. See docs/volunteer.md.
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { ConfigError } from '../shared/index.js'
import {
  parsePolicyLayer,
  resolvePolicy,
  type GuestPolicy,
  type PolicyLayer,
} from '../worker/policy/index.js'
import type { EnvConfig } from './config.js'

export interface WorkerPolicyFlags {
  config?: string | undefined
  stateDir?: string | undefined
  keyFile: string
  run?: string | undefined
  threads?: number | undefined
  dutyCycle?: string | undefined
  idleMinutes?: string | undefined
  otherCpu?: string | undefined
  bufferMinutes?: string | undefined
  unitMb?: string | undefined
  window?: string[] | undefined
  runOnBattery?: boolean | undefined
  /** commander's `--no-peers`: false when given. */
  peers?: boolean | undefined
  peerCacheMb?: string | undefined
}

export function defaultWorkerConfigFile(): string {
  return join(homedir(), '.cohort', 'worker.json')
}

/** The state directory: flag, env, else `worker-state` beside the key file (one per identity). */
export function workerStateDir(flag: string | undefined, env: EnvConfig, keyFile: string): string {
  return flag ?? env.workerStateDir ?? join(dirname(keyFile), 'worker-state')
}

const number = (v: string | undefined, source: string): number | undefined => {
  if (v === undefined) return undefined
  const n = Number(v)
  if (v.trim() === '' || !Number.isFinite(n)) throw new ConfigError(`${source} must be a number, got "${v}"`)
  return n
}

export async function loadWorkerPolicy(
  flags: WorkerPolicyFlags,
  env: EnvConfig,
): Promise<{ policy: GuestPolicy; stateDir: string; configFile: string | undefined }> {
  const layers: PolicyLayer[] = []
  const explicit = flags.config ?? env.workerConfig
  const configFile =
    explicit ?? (existsSync(defaultWorkerConfigFile()) ? defaultWorkerConfigFile() : undefined)
  if (configFile !== undefined) {
    let text: string
    try {
      text = await readFile(configFile, 'utf8')
    } catch (err) {
      throw new ConfigError(`cannot read the worker config ${configFile}: ${(err as Error).message}`, {
        cause: err,
      })
    }
    let raw: unknown
    try {
      raw = JSON.parse(text)
    } catch (err) {
      throw new ConfigError(`${configFile}: not valid JSON (${(err as Error).message})`, { cause: err })
    }
    layers.push(parsePolicyLayer(raw, configFile))
  }
  if (env.workerRun !== undefined) layers.push(parsePolicyLayer({ run: env.workerRun }, 'COHORT_WORKER_RUN'))
  if (env.workerDutyCycle !== undefined) {
    const d = number(env.workerDutyCycle, 'COHORT_WORKER_DUTY_CYCLE')
    layers.push(parsePolicyLayer({ cpu: { dutyCycle: d } }, 'COHORT_WORKER_DUTY_CYCLE'))
  }
  const flag = (name: string, layer: Record<string, unknown>): void => {
    layers.push(parsePolicyLayer(layer, `--${name}`))
  }
  if (flags.run !== undefined) flag('run', { run: flags.run })
  if (flags.threads !== undefined) flag('threads', { cpu: { threads: flags.threads } })
  if (flags.dutyCycle !== undefined)
    flag('duty-cycle', { cpu: { dutyCycle: number(flags.dutyCycle, '--duty-cycle') } })
  if (flags.idleMinutes !== undefined)
    flag('idle-minutes', { idle: { inputMinutes: number(flags.idleMinutes, '--idle-minutes') } })
  if (flags.otherCpu !== undefined)
    flag('other-cpu', { idle: { otherCpuPercent: number(flags.otherCpu, '--other-cpu') } })
  if (flags.bufferMinutes !== undefined)
    flag('buffer-minutes', { bufferMinutes: number(flags.bufferMinutes, '--buffer-minutes') })
  if (flags.unitMb !== undefined) flag('unit-mb', { memory: { unitMb: number(flags.unitMb, '--unit-mb') } })
  if (flags.window !== undefined) flag('window', { windows: flags.window })
  if (flags.peers === false) flag('no-peers', { peers: { enabled: false } })
  if (flags.peerCacheMb !== undefined)
    flag('peer-cache-mb', { peers: { cacheMb: number(flags.peerCacheMb, '--peer-cache-mb') } })
  if (flags.runOnBattery !== undefined)
    flag('run-on-battery', { battery: { runOnBattery: flags.runOnBattery } })
  return {
    policy: resolvePolicy(...layers),
    stateDir: workerStateDir(flags.stateDir, env, flags.keyFile),
    configFile,
  }
}
