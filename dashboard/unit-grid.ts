// A job's units drawn on a canvas, one square per unit, coloured by state, laid out row by row to
// the canvas's width. Large jobs draw at most MAX_GRID_UNITS (the first ones).
import { UNIT_CODES } from '../shared/ops-views.js'
import type { Api } from './api.js'

export const MAX_GRID_UNITS = 16_384
const PAGE = 4096

const COLOURS: Record<string, string> = {
  [UNIT_CODES.planned]: '#c8ccd2',
  [UNIT_CODES.leased]: '#4f8bd6',
  [UNIT_CODES.validated]: '#2e9d57',
  [UNIT_CODES.disputed]: '#e0a100',
  [UNIT_CODES.failed]: '#d2413a',
  [UNIT_CODES.missing]: '#eef0f3',
}

/** A job's unit states, read page by page (up to MAX_GRID_UNITS). */
export async function readUnitStates(
  api: Api,
  jobId: string,
  total: number,
  signal?: AbortSignal,
): Promise<string> {
  const shown = Math.min(total, MAX_GRID_UNITS)
  let states = ''
  for (let from = 0; from < shown; from += PAGE)
    states += (await api.units(jobId, from, Math.min(PAGE, shown - from), signal)).states
  return states
}

/** Draws `states` on `canvas`, sizing the squares so that every unit fits in a few hundred pixels. */
export function drawGrid(canvas: HTMLCanvasElement, states: string): void {
  const width = canvas.width
  const n = Math.max(states.length, 1)
  const cell = Math.max(3, Math.min(16, Math.floor(Math.sqrt((width * 240) / n))))
  const perRow = Math.max(1, Math.floor(width / cell))
  const rows = Math.ceil(n / perRow)
  canvas.height = Math.max(cell, rows * cell)
  const g = canvas.getContext('2d')
  if (g === null) return
  g.clearRect(0, 0, canvas.width, canvas.height)
  const gap = cell > 4 ? 1 : 0
  for (let i = 0; i < states.length; i++) {
    g.fillStyle = COLOURS[states[i] ?? '-'] ?? COLOURS[UNIT_CODES.missing]!
    g.fillRect((i % perRow) * cell, Math.floor(i / perRow) * cell, cell - gap, cell - gap)
  }
}

/** How many of `states` are validated. */
export const countValidated = (states: string): number => states.split(UNIT_CODES.validated).length - 1
