// The page's DOM: reads the volunteer's controls, shows the contributor's state, counters and the
// piece being computed. All text goes through textContent (no HTML is ever built from data).
import { formatCredit, type LogRecord, type VolunteerRecord } from '../shared/index.js'
import type { WorkerStats } from '../worker/portable.js'
import type { ContributorState, PauseReason } from './contributor.js'
import { describePiece, drawPiece, type Piece } from './piece-canvas.js'
import type { BatteryReading } from './power-policy.js'
import type { Settings, Totals } from './settings.js'

export interface ViewModel {
  id: string
  state: ContributorState
  reasons: ReadonlySet<PauseReason>
  stats: WorkerStats | undefined
  kind: string | undefined
  piece: Piece | undefined
  totals: Totals
  settings: Settings
  cores: number
  battery: BatteryReading | undefined
  /** This identity's record at the coordinator (GET /v1/volunteers/:id), once read. */
  standing: VolunteerRecord | undefined
}

export interface ViewHandlers {
  toggle(): void
  threads(n: number): void
  pauseWhenHidden(on: boolean): void
  batteryThreshold(percent: number): void
}

export interface View {
  render(m: ViewModel): void
  log(record: LogRecord): void
  fatal(message: string): void
}

const REASON_TEXT: Record<PauseReason, string> = {
  user: 'by you',
  hidden: 'while the tab is hidden',
  battery: 'on low battery',
}

/** 950 ms -> "0.9 s", 125 s -> "2 min 05 s", 2 h -> "2 h 00 min". */
export function formatDuration(ms: number): string {
  const s = Math.floor(ms / 1000)
  if (s < 60) return `${(ms / 1000).toFixed(1)} s`
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`
  return `${Math.floor(s / 3600)} h ${String(Math.floor(s / 60) % 60).padStart(2, '0')} min`
}

function stateText(m: ViewModel): string {
  switch (m.state) {
    case 'idle':
      return 'Not started'
    case 'waiting':
      return 'Another tab of this browser is contributing; this one takes over when it closes'
    case 'connecting':
      return 'Connecting…'
    case 'running':
      return 'Computing'
    case 'paused':
      return `Paused ${[...m.reasons].map((r) => REASON_TEXT[r]).join(', ')}`
    case 'offline':
      return 'Reconnecting to the network…'
    case 'left':
      return 'Stopped'
    case 'failed':
      return 'Could not reach the network (see the log); press Start to retry'
  }
}

function el<T extends HTMLElement>(doc: Document, id: string, type: new () => T): T {
  const e = doc.getElementById(id)
  if (!(e instanceof type)) throw new Error(`the page has no #${id}`)
  return e
}

export function bindView(doc: Document, handlers: ViewHandlers): View {
  const $ = {
    toggle: el(doc, 'toggle', HTMLButtonElement),
    state: el(doc, 'state', HTMLElement),
    threads: el(doc, 'threads', HTMLInputElement),
    threadsOut: el(doc, 'threads-out', HTMLOutputElement),
    cores: el(doc, 'cores', HTMLElement),
    pauseHidden: el(doc, 'pause-hidden', HTMLInputElement),
    batteryRow: el(doc, 'battery-row', HTMLElement),
    batteryThreshold: el(doc, 'battery-threshold', HTMLInputElement),
    batteryNow: el(doc, 'battery-now', HTMLElement),
    unitsDone: el(doc, 'units-done', HTMLElement),
    jobKind: el(doc, 'job-kind', HTMLElement),
    computeTime: el(doc, 'compute-time', HTMLElement),
    accepted: el(doc, 'accepted', HTMLElement),
    refused: el(doc, 'refused', HTMLElement),
    totals: el(doc, 'totals', HTMLElement),
    credit: el(doc, 'credit', HTMLElement),
    creditNote: el(doc, 'credit-note', HTMLElement),
    statsLink: el(doc, 'stats-link', HTMLAnchorElement),
    canvas: el(doc, 'piece', HTMLCanvasElement),
    pieceTitle: el(doc, 'piece-title', HTMLElement),
    pieceCaption: el(doc, 'piece-caption', HTMLElement),
    workerId: el(doc, 'worker-id', HTMLElement),
    log: el(doc, 'log', HTMLElement),
  }
  $.toggle.addEventListener('click', () => handlers.toggle())
  $.threads.addEventListener('input', () => {
    $.threadsOut.value = $.threads.value
    handlers.threads(Number($.threads.value))
  })
  $.pauseHidden.addEventListener('change', () => handlers.pauseWhenHidden($.pauseHidden.checked))
  $.batteryThreshold.addEventListener('input', () => {
    const v = Math.round(Number($.batteryThreshold.value))
    if (Number.isFinite(v) && v >= 0 && v <= 100) handlers.batteryThreshold(v)
  })

  let drawn: Piece | undefined
  let first = true
  const lines: string[] = []

  return {
    render(m) {
      if (first) {
        first = false
        $.threads.max = String(m.cores)
        $.threads.value = String(m.settings.threads)
        $.threadsOut.value = String(m.settings.threads)
        $.cores.textContent = String(m.cores)
        $.pauseHidden.checked = m.settings.pauseWhenHidden
        $.batteryThreshold.value = String(m.settings.batteryThreshold)
        $.workerId.textContent = m.id
        doc.body.dataset['workerId'] = m.id
        drawPiece($.canvas, undefined)
      }
      doc.body.dataset['state'] = m.state
      $.state.textContent = stateText(m)
      $.toggle.disabled = m.state === 'left' || m.state === 'connecting'
      $.toggle.textContent =
        m.state === 'idle' || m.state === 'failed' ? 'Start' : m.reasons.has('user') ? 'Resume' : 'Pause'
      $.batteryRow.hidden = m.battery === undefined
      if (m.battery !== undefined)
        $.batteryNow.textContent = `(now ${m.battery.percent}%${m.battery.charging ? ', charging' : ''})`
      const s = m.stats
      $.unitsDone.textContent = String(s?.unitsDone ?? 0)
      $.jobKind.textContent = m.kind ?? '—'
      $.computeTime.textContent = formatDuration(s?.computeMs ?? 0)
      $.accepted.textContent = String(s?.resultsAccepted ?? 0)
      $.refused.textContent = String(s?.unitsRefused ?? 0)
      $.totals.textContent = `${m.totals.units} units, ${formatDuration(m.totals.computeMs)} of compute`
      const r = m.standing
      $.credit.textContent = r === undefined ? '—' : formatCredit(r.creditMs)
      $.creditNote.textContent =
        r === undefined
          ? ''
          : `${r.unitsValidated} units validated${r.rank === undefined ? '' : `, rank ${r.rank}`}`
      $.statsLink.href = `/stats?id=${encodeURIComponent(m.id)}`
      if (m.piece !== drawn) {
        drawn = m.piece
        drawPiece($.canvas, m.piece)
        const d = describePiece(m.piece)
        $.pieceTitle.textContent = d.title
        $.pieceCaption.textContent = d.caption
      }
    },
    log(r) {
      const time = new Date(r.time).toLocaleTimeString()
      const fields = r.fields === undefined ? '' : ` ${JSON.stringify(r.fields)}`
      lines.push(`${time} ${r.level} ${r.ns}: ${r.msg}${fields}`)
      if (lines.length > 200) lines.splice(0, lines.length - 200)
      $.log.textContent = lines.join('\n')
    },
    fatal(message) {
      doc.body.dataset['state'] = 'failed'
      $.state.textContent = message
      $.toggle.disabled = true
    },
  }
}
