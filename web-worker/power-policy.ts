// When the page should step aside: the tab is hidden (if the volunteer asked), or the device runs on
// battery below a threshold (where the Battery Status API exists: Chromium-based browsers).

/** The parts of a BatteryManager used here (the DOM typings no longer include the Battery API). */
export interface BatteryLike extends EventTarget {
  readonly level: number
  readonly charging: boolean
}

export interface BatteryReading {
  /** 0..100. */
  percent: number
  charging: boolean
}

type NavigatorWithBattery = Navigator & { getBattery?: () => Promise<BatteryLike> }

/** Calls `onChange` now and whenever the tab is shown or hidden; returns a function that stops it. */
export function watchVisibility(doc: Document, onChange: (hidden: boolean) => void): () => void {
  const listener = (): void => onChange(doc.visibilityState === 'hidden')
  doc.addEventListener('visibilitychange', listener)
  listener()
  return () => doc.removeEventListener('visibilitychange', listener)
}

/**
 * Calls `onChange` now and whenever the battery level or charging state changes. Resolves to a
 * function that stops it, or to undefined where the Battery API does not exist or is refused.
 */
export async function watchBattery(
  nav: Navigator,
  onChange: (reading: BatteryReading) => void,
): Promise<(() => void) | undefined> {
  const getBattery = (nav as NavigatorWithBattery).getBattery
  if (typeof getBattery !== 'function') return undefined
  let battery: BatteryLike
  try {
    battery = await getBattery.call(nav)
  } catch {
    return undefined
  }
  const listener = (): void =>
    onChange({ percent: Math.round(battery.level * 100), charging: battery.charging })
  battery.addEventListener('levelchange', listener)
  battery.addEventListener('chargingchange', listener)
  listener()
  return () => {
    battery.removeEventListener('levelchange', listener)
    battery.removeEventListener('chargingchange', listener)
  }
}

/** Whether a battery reading is below the volunteer's threshold (0 never pauses). */
export function batteryLow(reading: BatteryReading | undefined, thresholdPercent: number): boolean {
  return reading !== undefined && !reading.charging && reading.percent < thresholdPercent
}
