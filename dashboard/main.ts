// The operators' dashboard (/dashboard): jobs and their progress, the selected job's units, the
// throughput, workers online by runtime with their speeds, integrity and bytes. Data comes from a
// Source (source.ts); the admin key typed in is kept for this tab's session only.
import type { OnlineWorker, Overview, OverviewJob } from '../shared/ops-views.js'
import { ApiError, createApi } from './api.js'
import { drawThroughput, lastMinute } from './charts.js'
import { pollingSource } from './source.js'
import { countValidated, drawGrid, MAX_GRID_UNITS, readUnitStates } from './unit-grid.js'

const KEY = 'cohort-admin-key'
/** Samples of each worker's valid results kept for its speed. */
const SPEED_WINDOW_MS = 60_000

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id)
  if (el === null) throw new Error(`the page has no #${id}`)
  return el as T
}

const api = createApi(() => sessionStorage.getItem(KEY) ?? '')
const source = pollingSource(api)
let selected: string | undefined
let gridBusy = false
const samples = new Map<string, { at: number; valid: number }[]>()

const text = (id: string, v: string | number): void => {
  $(id).textContent = String(v)
}

const setStatus = (state: 'ready' | 'error', message: string): void => {
  document.body.dataset['state'] = state
  text('status', message)
}

function cell(row: HTMLTableRowElement, value: string | Node): void {
  const td = row.insertCell()
  if (typeof value === 'string') td.textContent = value
  else td.append(value)
}

function renderJobs(jobs: OverviewJob[]): void {
  const body = $<HTMLTableElement>('jobs').tBodies[0]!
  body.replaceChildren()
  for (const j of jobs) {
    const row = body.insertRow()
    row.dataset['job'] = j.id
    if (j.id === selected) row.classList.add('selected')
    const bar = document.createElement('progress')
    bar.max = Math.max(1, j.units.total)
    bar.value = j.state === 'completed' ? bar.max : j.units.validated
    cell(row, j.id)
    cell(row, j.type)
    cell(row, j.state)
    cell(row, bar)
    cell(
      row,
      `${j.units.validated} / ${j.units.total}${j.units.failed > 0 ? ` (${j.units.failed} failed)` : ''}`,
    )
    row.addEventListener('click', () => {
      selected = j.id
      source.refresh()
    })
  }
}

/** Units per minute of each worker, from its valid results over the samples of the last minute. */
function speedOf(w: OnlineWorker, now: number): string {
  const list = (samples.get(w.id) ?? []).filter((s) => now - s.at <= SPEED_WINDOW_MS)
  list.push({ at: now, valid: w.valid })
  samples.set(w.id, list)
  const first = list[0]!
  const minutes = (now - first.at) / 60_000
  return minutes <= 0 ? '—' : ((w.valid - first.valid) / minutes).toFixed(1)
}

function renderWorkers(o: Overview): void {
  const { online, list } = o.workers
  text('workers-total', online.daemon + online.browser + online.unknown)
  text('workers-daemon', online.daemon)
  text('workers-browser', online.browser)
  text('workers-unknown', online.unknown)
  const body = $<HTMLTableElement>('workers').tBodies[0]!
  body.replaceChildren()
  for (const w of list) {
    const row = body.insertRow()
    cell(row, `${w.id.slice(0, 12)}…`)
    cell(row, w.runtime)
    cell(row, String(w.valid))
    cell(row, speedOf(w, o.at))
  }
  const here = new Set(list.map((w) => w.id))
  for (const id of samples.keys()) if (!here.has(id)) samples.delete(id)
}

const bytes = (n: number): string =>
  n < 1024 ? `${n} B` : n < 1024 ** 2 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 ** 2).toFixed(1)} MiB`

async function renderGrid(jobs: OverviewJob[]): Promise<void> {
  const job = jobs.find((j) => j.id === selected)
  if (job === undefined || gridBusy) return
  gridBusy = true
  try {
    const states = await readUnitStates(api, job.id, job.units.total)
    drawGrid($<HTMLCanvasElement>('grid'), states)
    const validated = countValidated(states)
    const pct = states.length === 0 ? 0 : Math.floor((100 * validated) / states.length)
    text('grid-job', job.id)
    text('grid-percent', `${pct} %`)
    const grid = $('grid')
    grid.dataset['total'] = String(job.units.total)
    grid.dataset['validated'] = String(validated)
    text(
      'grid-note',
      job.units.total > MAX_GRID_UNITS ? `(first ${MAX_GRID_UNITS} of ${job.units.total} units)` : '',
    )
  } finally {
    gridBusy = false
  }
}

function render(o: Overview): void {
  if (selected === undefined || !o.jobs.some((j) => j.id === selected))
    selected = (o.jobs.find((j) => j.state === 'running') ?? o.jobs[0])?.id
  renderJobs(o.jobs)
  renderWorkers(o)
  drawThroughput($<HTMLCanvasElement>('throughput'), o.throughput)
  text('rate', lastMinute(o.throughput))
  text('disagreements', o.integrity.disagreements)
  text('caught', o.integrity.identitiesCaught)
  text('backtracked', o.integrity.unitsBacktracked)
  text('discarded', o.integrity.resultsDiscarded)
  text('bytes-coordinator', bytes(o.bytes.coordinator))
  text('bytes-peers', o.bytes.peers === null ? 'reported by workers only' : bytes(o.bytes.peers))
  renderGrid(o.jobs).catch((err: unknown) => setStatus('error', (err as Error).message))
}

$<HTMLFormElement>('key-form').addEventListener('submit', (e) => {
  e.preventDefault()
  const key = $<HTMLInputElement>('key').value.trim()
  if (key === '') sessionStorage.removeItem(KEY)
  else sessionStorage.setItem(KEY, key)
  $<HTMLInputElement>('key').value = ''
  source.refresh()
})

source.start({
  data(o) {
    setStatus('ready', `Updated ${new Date(o.at).toLocaleTimeString()}`)
    render(o)
  },
  error(err) {
    const needsKey = err instanceof ApiError && (err.status === 401 || err.status === 403)
    setStatus('error', needsKey ? `${err.message}: enter an admin key` : err.message)
  },
})
