// What the machine is doing, read without native addons: other programs' CPU use (os.cpus() deltas
// minus this process's own, threads included), the user's input idle time (loginctl on Linux, ioreg
// on macOS, GetLastInputInfo through PowerShell on Windows) and the battery (/sys/class/power_supply,
// pmset, WMI). Each probe throws ProbeUnavailableError when its signal cannot be read here.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { readdir, readFile } from 'node:fs/promises'
import { cpus, userInfo } from 'node:os'
import { join } from 'node:path'
import { CohortError } from '../../shared/index.js'

export class ProbeUnavailableError extends CohortError {
  override name = 'ProbeUnavailableError'
}

export interface BatteryState {
  onBattery: boolean
  /** Charge in percent, when known. */
  percent: number | undefined
}

/** The probes the idle monitor samples; tests inject their own. */
export interface MachineProbes {
  /** Other programs' CPU use since the previous call, percent of the whole machine. */
  otherCpuPercent(): number
  /** Milliseconds since the last keyboard or mouse input. */
  inputIdleMs(): Promise<number>
  battery(): Promise<BatteryState>
  close(): void
}

function run(cmd: string, args: string[], timeoutMs = 3_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, windowsHide: true }, (err, stdout) => {
      if (err !== null) reject(new ProbeUnavailableError(`${cmd} failed: ${err.message}`, { cause: err }))
      else resolve(stdout)
    })
  })
}

/** Busy and total CPU milliseconds of all cores, and this process's own CPU milliseconds. */
function cpuSnapshot(): { busy: number; total: number; own: number } {
  let busy = 0
  let total = 0
  for (const c of cpus()) {
    const t = c.times
    busy += t.user + t.nice + t.sys + t.irq
    total += t.user + t.nice + t.sys + t.irq + t.idle
  }
  const u = process.cpuUsage()
  return { busy, total, own: (u.user + u.system) / 1000 }
}

export function createCpuProbe(): () => number {
  let prev = cpuSnapshot()
  return () => {
    const now = cpuSnapshot()
    const total = now.total - prev.total
    const other = now.busy - prev.busy - (now.own - prev.own)
    prev = now
    return total <= 0 ? 0 : Math.max(0, Math.min(100, (other / total) * 100))
  }
}

/** Linux: systemd-logind's idle hint of the user's graphical session. */
function linuxInputIdle(): () => Promise<number> {
  let session: string | undefined
  return async () => {
    if (session === undefined) {
      const out = await run('loginctl', ['show-user', String(userInfo().uid), '-p', 'Display', '--value'])
      session = out.trim()
      if (session === '')
        throw new ProbeUnavailableError('no graphical login session (loginctl Display is empty)')
    }
    const out = await run('loginctl', ['show-session', session, '-p', 'IdleHint', '-p', 'IdleSinceHint'])
    const hint = /IdleHint=(yes|no)/.exec(out)?.[1]
    const since = Number(/IdleSinceHint=(\d+)/.exec(out)?.[1] ?? NaN)
    if (hint === undefined) throw new ProbeUnavailableError('loginctl reports no IdleHint')
    if (hint === 'no') return 0
    if (!Number.isFinite(since) || since === 0)
      throw new ProbeUnavailableError('loginctl reports no IdleSinceHint')
    return Math.max(0, Date.now() - since / 1000)
  }
}

/** macOS: HIDIdleTime of IOHIDSystem, in nanoseconds. */
async function macInputIdle(): Promise<number> {
  const out = await run('ioreg', ['-c', 'IOHIDSystem', '-d', '4'])
  const ns = /"HIDIdleTime" = (\d+)/.exec(out)?.[1]
  if (ns === undefined) throw new ProbeUnavailableError('ioreg reports no HIDIdleTime')
  return Number(BigInt(ns) / 1_000_000n)
}

const PS_IDLE = `
Add-Type @'
using System; using System.Runtime.InteropServices;
public static class CohortIdle {
  [StructLayout(LayoutKind.Sequential)] struct LII { public uint cbSize; public uint dwTime; }
  [DllImport("user32.dll")] static extern bool GetLastInputInfo(ref LII p);
  public static uint Ms() { var l = new LII(); l.cbSize = 8; GetLastInputInfo(ref l); return (uint)Environment.TickCount - l.dwTime; }
}
'@
while ($true) { [Console]::Out.WriteLine([CohortIdle]::Ms()); [Console]::Out.Flush(); Start-Sleep -Milliseconds 1000 }
`

/** Windows: one long-lived PowerShell prints GetLastInputInfo's idle time every second. */
function windowsInputIdle(): { read: () => Promise<number>; close: () => void } {
  let child: ChildProcess | undefined
  let last: number | undefined
  let failed: Error | undefined
  const start = (): void => {
    child = spawn('powershell.exe', ['-NoProfile', '-NonInteractive', '-Command', PS_IDLE], {
      stdio: ['ignore', 'pipe', 'ignore'],
      windowsHide: true,
    })
    child.on('error', (err) => (failed = err))
    child.on('exit', () => (failed ??= new Error('powershell exited')))
    let buf = ''
    child.stdout?.setEncoding('utf8')
    child.stdout?.on('data', (d: string) => {
      buf += d
      const lines = buf.split(/\r?\n/)
      buf = lines.pop() ?? ''
      const v = Number(lines.at(-1))
      if (lines.length > 0 && Number.isFinite(v)) last = v
    })
  }
  return {
    read() {
      if (child === undefined) start()
      if (failed !== undefined)
        return Promise.reject(new ProbeUnavailableError(`GetLastInputInfo: ${failed.message}`))
      // Not read yet: count the user as present.
      return Promise.resolve(last ?? 0)
    },
    close: () => void child?.kill(),
  }
}

async function linuxBattery(root = '/sys/class/power_supply'): Promise<BatteryState> {
  let names: string[]
  try {
    names = await readdir(root)
  } catch (err) {
    throw new ProbeUnavailableError(`cannot read ${root}`, { cause: err })
  }
  const read = (n: string, f: string): Promise<string> =>
    readFile(join(root, n, f), 'utf8').then(
      (s) => s.trim(),
      () => '',
    )
  let mains: boolean | undefined
  let discharging = false
  let percent: number | undefined
  for (const n of names) {
    const type = await read(n, 'type')
    if (type === 'Mains') mains = (mains ?? false) || (await read(n, 'online')) === '1'
    else if (type === 'Battery') {
      if ((await read(n, 'status')) === 'Discharging') discharging = true
      const c = Number(await read(n, 'capacity'))
      if (Number.isFinite(c)) percent = percent === undefined ? c : Math.min(percent, c)
    }
  }
  return { onBattery: discharging || mains === false, percent }
}

async function macBattery(): Promise<BatteryState> {
  const out = await run('pmset', ['-g', 'batt'])
  const pct = /(\d+)%/.exec(out)?.[1]
  return { onBattery: /'Battery Power'/.test(out), percent: pct === undefined ? undefined : Number(pct) }
}

async function windowsBattery(): Promise<BatteryState> {
  const out = await run('powershell.exe', [
    '-NoProfile',
    '-NonInteractive',
    '-Command',
    'Get-CimInstance Win32_Battery | Select-Object -First 1 BatteryStatus,EstimatedChargeRemaining | ConvertTo-Json',
  ])
  if (out.trim() === '') return { onBattery: false, percent: undefined } // no battery
  const b = JSON.parse(out) as { BatteryStatus?: number; EstimatedChargeRemaining?: number }
  // BatteryStatus 1: discharging (on battery); 2: on AC.
  return { onBattery: b.BatteryStatus === 1, percent: b.EstimatedChargeRemaining }
}

/** The probes for this platform (`platform` injectable for tests). */
export function createMachineProbes(platform: NodeJS.Platform = process.platform): MachineProbes {
  const cpu = createCpuProbe()
  const unsupported = (what: string) => () =>
    Promise.reject(new ProbeUnavailableError(`${what} is not read on ${platform}`))
  if (platform === 'linux')
    return { otherCpuPercent: cpu, inputIdleMs: linuxInputIdle(), battery: () => linuxBattery(), close() {} }
  if (platform === 'darwin')
    return { otherCpuPercent: cpu, inputIdleMs: macInputIdle, battery: macBattery, close() {} }
  if (platform === 'win32') {
    const idle = windowsInputIdle()
    return { otherCpuPercent: cpu, inputIdleMs: idle.read, battery: windowsBattery, close: idle.close }
  }
  return {
    otherCpuPercent: cpu,
    inputIdleMs: unsupported('user input idle time'),
    battery: unsupported('the battery'),
    close() {},
  }
}
