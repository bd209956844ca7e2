// The volunteer's policy: when the daemon may compute and how hard. Defaults live here, in one place;
// each layer (config file, environment, flags) is validated on its own with errors naming the field.
// Runtime-neutral: the file is read by scripts/worker-config.ts.
import { ConfigError } from '../../shared/index.js'

export type RunMode = 'always' | 'idle'

export interface GuestPolicy {
  /** `always`: ignore whether the volunteer uses the machine; `idle`: compute only when idle. Default `always`. */
  run: RunMode
  idle: {
    /** Minutes without keyboard or mouse input before the machine counts as idle. Default 3. */
    inputMinutes: number
    /** Other programs' CPU use, percent of the whole machine, above which the daemon pauses. Default 25. */
    otherCpuPercent: number
    /** `auto`: read user-input idle time where the OS reports it; `none`: CPU use only. Default `auto`. */
    input: 'auto' | 'none'
    /** Seconds the machine must stay idle before paused units resume. Default 2. */
    resumeSeconds: number
  }
  cpu: {
    /** Compute threads. Default: every core (less when `memory.totalMb` is set). */
    threads: number | undefined
    /** Percent of wall time each thread computes (the rest it sleeps). Default 100. */
    dutyCycle: number
  }
  memory: {
    /** V8 heap limit per unit thread, MiB. Default 512. */
    unitMb: number
    /** All unit threads together, MiB; caps the threads at `totalMb / unitMb`. Default: no cap. */
    totalMb: number | undefined
  }
  battery: {
    /** Compute while the machine runs on battery. Default false. */
    runOnBattery: boolean
    /** When on battery and allowed to run: stop below this charge, percent. Default 0. */
    minPercent: number
  }
  /** Daily windows, local time, `HH:MM-HH:MM` (may wrap past midnight). Default: empty = any time. */
  windows: string[]
  /** Work held, in minutes of compute per thread (never more than the lease deadlines allow). Default 10. */
  bufferMinutes: number
  /** Least seconds between two checkpoints of a unit written to disk. Default 30. */
  checkpointSeconds: number
  /** Unstarted units go back to the coordinator after this long paused, minutes. Default 10. */
  handBackAfterMinutes: number
  /** Seconds between two looks at the machine (sets the pause latency). Default 1. */
  pollSeconds: number
  peers: {
    /** Exchange units and content with other workers. Default true. */
    enabled: boolean
    /** Content (shared datasets) kept and served to peers, MiB. Default 1024. */
    cacheMb: number
    /** Take buffered units from busy peers when idle. Default true. */
    steal: boolean
  }
}

export const DEFAULT_POLICY: GuestPolicy = {
  run: 'always',
  idle: { inputMinutes: 3, otherCpuPercent: 25, input: 'auto', resumeSeconds: 2 },
  cpu: { threads: undefined, dutyCycle: 100 },
  memory: { unitMb: 512, totalMb: undefined },
  battery: { runOnBattery: false, minPercent: 0 },
  windows: [],
  bufferMinutes: 10,
  checkpointSeconds: 30,
  handBackAfterMinutes: 10,
  pollSeconds: 1,
  peers: { enabled: true, cacheMb: 1024, steal: true },
}

type DeepPartial<T> = {
  [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K]
}
export type PolicyLayer = DeepPartial<GuestPolicy>

const fail = (source: string, field: string, msg: string): never => {
  throw new ConfigError(`${source}: ${field} ${msg}`)
}

function record(
  raw: unknown,
  source: string,
  path: string,
  keys: readonly string[],
): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    fail(source, path === '' ? 'the policy' : path, 'must be an object')
  const rec = raw as Record<string, unknown>
  for (const k of Object.keys(rec)) {
    if (!keys.includes(k))
      fail(source, path === '' ? k : `${path}.${k}`, `is not a known setting (known: ${keys.join(', ')})`)
  }
  return rec
}

function num(
  rec: Record<string, unknown>,
  source: string,
  field: string,
  key: string,
  min: number,
  max: number,
  integer = false,
): number | undefined {
  const v = rec[key]
  if (v === undefined) return undefined
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v)))
    fail(
      source,
      field,
      `must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got ${JSON.stringify(v)}`,
    )
  return v as number
}

const WINDOW = /^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$/

/** A window as minutes after midnight, [start, end); end < start wraps past midnight. */
export function parseWindow(
  text: string,
  source = 'policy',
  field = 'windows',
): { start: number; end: number } {
  const m = WINDOW.exec(text)
  if (m === null) return fail(source, field, `must look like "22:00-07:00", got ${JSON.stringify(text)}`)
  const start = Number(m[1]) * 60 + Number(m[2])
  const end = Number(m[3]) * 60 + Number(m[4])
  if (start === end) fail(source, field, `is empty: ${JSON.stringify(text)}`)
  return { start, end }
}

/** Validate one layer (a parsed config file, or settings from the environment or flags). */
export function parsePolicyLayer(raw: unknown, source: string): PolicyLayer {
  const top = record(raw, source, '', [
    'run',
    'idle',
    'cpu',
    'memory',
    'battery',
    'windows',
    'bufferMinutes',
    'checkpointSeconds',
    'handBackAfterMinutes',
    'pollSeconds',
    'peers',
  ])
  const out: PolicyLayer = {}
  if (top['run'] !== undefined) {
    if (top['run'] !== 'always' && top['run'] !== 'idle')
      fail(source, 'run', `must be "always" or "idle", got ${JSON.stringify(top['run'])}`)
    out.run = top['run'] as RunMode
  }
  if (top['idle'] !== undefined) {
    const r = record(top['idle'], source, 'idle', [
      'inputMinutes',
      'otherCpuPercent',
      'input',
      'resumeSeconds',
    ])
    out.idle = {}
    const inputMinutes = num(r, source, 'idle.inputMinutes', 'inputMinutes', 0, 1440)
    const otherCpuPercent = num(r, source, 'idle.otherCpuPercent', 'otherCpuPercent', 0, 100)
    const resumeSeconds = num(r, source, 'idle.resumeSeconds', 'resumeSeconds', 0, 3600)
    if (inputMinutes !== undefined) out.idle.inputMinutes = inputMinutes
    if (otherCpuPercent !== undefined) out.idle.otherCpuPercent = otherCpuPercent
    if (resumeSeconds !== undefined) out.idle.resumeSeconds = resumeSeconds
    if (r['input'] !== undefined) {
      if (r['input'] !== 'auto' && r['input'] !== 'none')
        fail(source, 'idle.input', `must be "auto" or "none", got ${JSON.stringify(r['input'])}`)
      out.idle.input = r['input'] as 'auto' | 'none'
    }
  }
  if (top['cpu'] !== undefined) {
    const r = record(top['cpu'], source, 'cpu', ['threads', 'dutyCycle'])
    out.cpu = {}
    const threads = num(r, source, 'cpu.threads', 'threads', 1, 1024, true)
    const dutyCycle = num(r, source, 'cpu.dutyCycle', 'dutyCycle', 1, 100)
    if (threads !== undefined) out.cpu.threads = threads
    if (dutyCycle !== undefined) out.cpu.dutyCycle = dutyCycle
  }
  if (top['memory'] !== undefined) {
    const r = record(top['memory'], source, 'memory', ['unitMb', 'totalMb'])
    out.memory = {}
    const unitMb = num(r, source, 'memory.unitMb', 'unitMb', 16, 65_536, true)
    const totalMb = num(r, source, 'memory.totalMb', 'totalMb', 16, 1_048_576, true)
    if (unitMb !== undefined) out.memory.unitMb = unitMb
    if (totalMb !== undefined) out.memory.totalMb = totalMb
  }
  if (top['battery'] !== undefined) {
    const r = record(top['battery'], source, 'battery', ['runOnBattery', 'minPercent'])
    out.battery = {}
    if (r['runOnBattery'] !== undefined) {
      if (typeof r['runOnBattery'] !== 'boolean')
        fail(
          source,
          'battery.runOnBattery',
          `must be true or false, got ${JSON.stringify(r['runOnBattery'])}`,
        )
      out.battery.runOnBattery = r['runOnBattery'] as boolean
    }
    const minPercent = num(r, source, 'battery.minPercent', 'minPercent', 0, 100)
    if (minPercent !== undefined) out.battery.minPercent = minPercent
  }
  if (top['windows'] !== undefined) {
    const w = top['windows']
    if (!Array.isArray(w) || w.some((x) => typeof x !== 'string'))
      fail(source, 'windows', 'must be a list of strings like "22:00-07:00"')
    const list = w as string[]
    list.forEach((x, i) => parseWindow(x, source, `windows[${i}]`))
    out.windows = list
  }
  if (top['peers'] !== undefined) {
    const r = record(top['peers'], source, 'peers', ['enabled', 'cacheMb', 'steal'])
    out.peers = {}
    for (const key of ['enabled', 'steal'] as const) {
      if (r[key] === undefined) continue
      if (typeof r[key] !== 'boolean')
        fail(source, `peers.${key}`, `must be true or false, got ${JSON.stringify(r[key])}`)
      out.peers[key] = r[key] as boolean
    }
    const cacheMb = num(r, source, 'peers.cacheMb', 'cacheMb', 16, 1_048_576, true)
    if (cacheMb !== undefined) out.peers.cacheMb = cacheMb
  }
  const bufferMinutes = num(top, source, 'bufferMinutes', 'bufferMinutes', 0, 10_080)
  const checkpointSeconds = num(top, source, 'checkpointSeconds', 'checkpointSeconds', 0.1, 86_400)
  const handBack = num(top, source, 'handBackAfterMinutes', 'handBackAfterMinutes', 0, 10_080)
  const pollSeconds = num(top, source, 'pollSeconds', 'pollSeconds', 0.1, 60)
  if (bufferMinutes !== undefined) out.bufferMinutes = bufferMinutes
  if (checkpointSeconds !== undefined) out.checkpointSeconds = checkpointSeconds
  if (handBack !== undefined) out.handBackAfterMinutes = handBack
  if (pollSeconds !== undefined) out.pollSeconds = pollSeconds
  return out
}

/** Defaults, then each layer in order (later layers win field by field). */
export function resolvePolicy(...layers: PolicyLayer[]): GuestPolicy {
  const p: GuestPolicy = structuredClone(DEFAULT_POLICY)
  for (const l of layers) {
    if (l.run !== undefined) p.run = l.run
    Object.assign(p.idle, l.idle)
    Object.assign(p.cpu, l.cpu)
    Object.assign(p.memory, l.memory)
    Object.assign(p.battery, l.battery)
    Object.assign(p.peers, l.peers)
    if (l.windows !== undefined) p.windows = [...l.windows]
    if (l.bufferMinutes !== undefined) p.bufferMinutes = l.bufferMinutes
    if (l.checkpointSeconds !== undefined) p.checkpointSeconds = l.checkpointSeconds
    if (l.handBackAfterMinutes !== undefined) p.handBackAfterMinutes = l.handBackAfterMinutes
    if (l.pollSeconds !== undefined) p.pollSeconds = l.pollSeconds
  }
  return p
}

/** Threads the policy allows on a machine with `cores` cores. */
export function policyThreads(p: GuestPolicy, cores: number): number {
  const wanted = p.cpu.threads ?? cores
  const byMemory = p.memory.totalMb === undefined ? wanted : Math.floor(p.memory.totalMb / p.memory.unitMb)
  return Math.max(1, Math.min(wanted, byMemory))
}
