// The volunteer's choices and lifetime totals, remembered in localStorage (per browser profile).
// Storage may be unavailable (private windows, blocked cookies): then defaults apply and nothing sticks.

export interface Settings {
  /** Web Workers computing at once, 1..cores. Default: half the cores, at least 1. */
  threads: number
  /** Pause while the tab is hidden. Default false. */
  pauseWhenHidden: boolean
  /** Pause on battery (not charging) below this percentage, 0..100; 0 never pauses. Default 30. */
  batteryThreshold: number
}

export interface Totals {
  /** Units this browser computed and had accepted, over all visits. */
  units: number
  /** Their compute time in ms. */
  computeMs: number
}

const SETTINGS_KEY = 'cohort.settings'
const TOTALS_KEY = 'cohort.totals'

export function defaultSettings(cores: number): Settings {
  return { threads: Math.max(1, Math.floor(cores / 2)), pauseWhenHidden: false, batteryThreshold: 30 }
}

function read(storage: Storage | undefined, key: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(storage?.getItem(key) ?? '{}')
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {}
  } catch {
    return {}
  }
}

function write(storage: Storage | undefined, key: string, value: object): void {
  try {
    storage?.setItem(key, JSON.stringify(value))
  } catch {
    // Storage full or unavailable: the page still works, it only forgets.
  }
}

const intIn = (v: unknown, min: number, max: number, fallback: number): number =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max ? v : fallback

export function loadSettings(storage: Storage | undefined, cores: number): Settings {
  const d = defaultSettings(cores)
  const r = read(storage, SETTINGS_KEY)
  return {
    threads: intIn(r['threads'], 1, cores, d.threads),
    pauseWhenHidden: typeof r['pauseWhenHidden'] === 'boolean' ? r['pauseWhenHidden'] : d.pauseWhenHidden,
    batteryThreshold: intIn(r['batteryThreshold'], 0, 100, d.batteryThreshold),
  }
}

export function saveSettings(storage: Storage | undefined, s: Settings): void {
  write(storage, SETTINGS_KEY, s)
}

export function loadTotals(storage: Storage | undefined): Totals {
  const r = read(storage, TOTALS_KEY)
  return {
    units: intIn(r['units'], 0, Number.MAX_SAFE_INTEGER, 0),
    computeMs: intIn(r['computeMs'], 0, Number.MAX_SAFE_INTEGER, 0),
  }
}

export function saveTotals(storage: Storage | undefined, t: Totals): void {
  write(storage, TOTALS_KEY, t)
}
