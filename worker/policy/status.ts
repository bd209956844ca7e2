// The daemon's status file: written every second (temporary file + rename) to `<stateDir>/status.json`;
// `cohort worker status` reads and prints it.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

export interface UnitStatus {
  unitId: string
  kind: string
  state: 'buffered' | 'running' | 'submitting'
  /** 0..1 as the kernel reported it. */
  progress: number
  /** Yield points passed in this run (primes: segments). */
  steps: number
  /** Step of the checkpoint this run resumed from, when it did. */
  resumedAtStep?: number
}

export interface WorkerStatus {
  v: 1
  pid: number
  workerId: string
  updatedAt: string
  /**
   * `computing`, `waiting` (nothing to do), `paused` (by the policy or `cohort worker pause`),
   * `finishing` (`cohort worker finish`: running units end, then the daemon exits) or `stopped`.
   */
  state: 'computing' | 'waiting' | 'paused' | 'finishing' | 'stopped'
  /** Why paused: user active, CPU busy, on battery, battery low, outside window, paused by the volunteer. */
  reason?: string
  policy: { run: string; dutyCycle: number; bufferMinutes: number }
  threads: number
  threadsInUse: number
  held: number
  unitsDone: number
  resultsAccepted: number
  /** Credit: compute seconds of results the coordinator accepted. */
  credit: number
  /**
   * This identity's record at its coordinator (GET /v1/volunteers/:id, read every 30 s when the
   * daemon has `--coordinator`): the credit of the leaderboard, in ms, and when it was read.
   */
  coordinator?: {
    creditMs: number
    unitsValidated: number
    rank?: number
    name?: string
    team?: string
    readAt: string
  }
  /** Measured compute seconds per unit, by kind. */
  unitSeconds: Record<string, number>
  /** Lease length of the latest units, ms. */
  leaseMs?: number
  /** This daemon's own CPU use over the last second, percent of one core. */
  ownCpuPercent: number
  machine?: { otherCpuPercent: number; inputIdleMs?: number; onBattery?: boolean; batteryPercent?: number }
  /** Peer exchange: peers known, and what was refused or held against peers (none of it fatal). */
  peers?: PeerStatus
  units: UnitStatus[]
}

export interface PeerStatus {
  known: number
  /** The overlay's size as this worker estimates it, and how many bits narrow the region it listens to. */
  overlayEstimate: number
  regionDepth: number
  /** Peer messages refused (malformed, forged, misaddressed, from banned peers), of which replays. */
  refused: number
  replayed: number
  /** Penalties for forgery (3 points ban a peer), and peers set aside for not answering. */
  penalties: number
  demoted: number
  /** Units offered by peers and refused without blame (an expired transfer, …). */
  offersRefused: number
  /** Claims peers reported without the coordinator's proof (the units stayed here). */
  unprovenClaims: number
}

export function statusPath(stateDir: string): string {
  return join(stateDir, 'status.json')
}

export async function writeStatus(stateDir: string, s: WorkerStatus): Promise<void> {
  const path = statusPath(stateDir)
  const tmp = `${path}.${process.pid}.tmp`
  await mkdir(stateDir, { recursive: true, mode: 0o700 })
  await writeFile(tmp, JSON.stringify(s, null, 2) + '\n')
  await rename(tmp, path)
}

export async function readStatus(stateDir: string): Promise<WorkerStatus> {
  return JSON.parse(await readFile(statusPath(stateDir), 'utf8')) as WorkerStatus
}

/** The human-readable form `cohort worker status` prints. */
export function formatStatus(s: WorkerStatus, now = Date.now()): string {
  const age = Math.round((now - Date.parse(s.updatedAt)) / 1000)
  const lines = [
    `worker ${s.workerId.slice(0, 12)}… (pid ${s.pid}), updated ${age}s ago${age > 5 ? ' — not running?' : ''}`,
    `state:    ${s.state}${s.reason === undefined ? '' : ` (${s.reason})`}`,
    `policy:   run ${s.policy.run}, duty cycle ${s.policy.dutyCycle}%, buffer ${s.policy.bufferMinutes} min`,
    `threads:  ${s.threadsInUse} of ${s.threads} in use; ${s.held} units held`,
    `done:     ${s.unitsDone} units, ${s.resultsAccepted} accepted, credit ${s.credit.toFixed(1)} s`,
  ]
  if (s.coordinator !== undefined) {
    const c = s.coordinator
    const who =
      c.name === undefined ? '' : `, as "${c.name}"${c.team === undefined ? '' : ` of team "${c.team}"`}`
    lines.push(
      `credit:   ${(c.creditMs / 1000).toFixed(1)} s on the coordinator (${c.unitsValidated} units validated${c.rank === undefined ? '' : `, rank ${c.rank}`})${who}`,
    )
  }
  if (s.machine !== undefined) {
    const m = s.machine
    const input = m.inputIdleMs === undefined ? '' : `, input idle ${Math.round(m.inputIdleMs / 1000)} s`
    const bat =
      m.onBattery === undefined
        ? ''
        : `, ${m.onBattery ? 'on battery' : 'on mains'}${m.batteryPercent === undefined ? '' : ` ${m.batteryPercent}%`}`
    lines.push(`machine:  other programs ${m.otherCpuPercent.toFixed(0)}% CPU${input}${bat}`)
  }
  if (s.peers !== undefined) {
    const p = s.peers
    lines.push(
      `peers:    ${p.known} known; refused ${p.refused} messages (${p.replayed} replays), ${p.offersRefused} offers, ${p.unprovenClaims} unproven claims; ${p.penalties} penalties, ${p.demoted} set aside`,
    )
  }
  for (const u of s.units) {
    const resumed = u.resumedAtStep === undefined ? '' : ` (resumed at step ${u.resumedAtStep})`
    lines.push(
      `  ${u.state.padEnd(10)} ${u.kind.padEnd(12)} ${(u.progress * 100).toFixed(1).padStart(5)}%  ${u.unitId}${resumed}`,
    )
  }
  return lines.join('\n') + '\n'
}
