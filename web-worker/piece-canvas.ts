// Something to look at: the piece of work a unit computes, drawn on a canvas. A primes unit shows its
// first numbers with the primes lit; an n-queens unit shows the board with the queens its prefix fixes
// and the rows its search fills in.
import type { UnitPayload } from '../shared/index.js'
import { primeFlags } from './prime-window.js'

export type Piece =
  | { type: 'primes'; from: number; to: number }
  | { type: 'nqueens'; n: number; prefix: number[] }
  | { type: 'other'; kind: string }

const COLS = 40
const ROWS = 12
const COLORS = {
  background: '#f6f7f9',
  composite: '#dde2ea',
  prime: '#1f7a54',
  light: '#eef0f4',
  dark: '#c9d0db',
  searched: 'rgba(31, 122, 84, 0.18)',
  queen: '#1b2430',
  text: '#4a5566',
}

const int = (v: unknown): number | undefined =>
  typeof v === 'number' && Number.isSafeInteger(v) ? v : undefined

/** The piece a verified unit stands for, read from its (already parsed) input. */
export function pieceOf(unit: UnitPayload): Piece {
  const input = (unit.input ?? {}) as Record<string, unknown>
  const name = unit.kind.slice(0, unit.kind.indexOf('@'))
  if (name === 'primes') {
    const from = int(input['from'])
    const to = int(input['to'])
    if (from !== undefined && to !== undefined) return { type: 'primes', from, to }
  }
  if (name === 'nqueens') {
    const n = int(input['n'])
    const prefix = input['prefix']
    if (n !== undefined && Array.isArray(prefix)) return { type: 'nqueens', n, prefix: prefix.map(Number) }
  }
  return { type: 'other', kind: unit.kind }
}

const fmt = (x: number): string => x.toLocaleString('en-US')

export function describePiece(piece: Piece | undefined): { title: string; caption: string } {
  if (piece === undefined)
    return { title: 'Waiting for a unit', caption: 'Press Start: the piece being computed appears here.' }
  switch (piece.type) {
    case 'primes':
      return {
        title: `Counting primes in ${fmt(piece.from)} … ${fmt(piece.to - 1)}`,
        caption: `The first ${COLS * ROWS} of the unit's ${fmt(piece.to - piece.from)} numbers; primes are lit.`,
      }
    case 'nqueens':
      return {
        title: `Completing a ${piece.n}×${piece.n} queens board`,
        caption: `${piece.prefix.length} queen${piece.prefix.length === 1 ? '' : 's'} fixed by this unit; it counts every way to fill the shaded rows.`,
      }
    case 'other':
      return { title: `Computing a ${piece.kind} unit`, caption: '' }
  }
}

function drawPrimes(ctx: CanvasRenderingContext2D, from: number, to: number, w: number, h: number): void {
  const flags = primeFlags(from, Math.min(COLS * ROWS, to - from))
  const cell = Math.min(w / COLS, h / ROWS)
  const x0 = (w - cell * COLS) / 2
  const y0 = (h - cell * ROWS) / 2
  flags.forEach((isPrime, i) => {
    ctx.fillStyle = isPrime === 1 ? COLORS.prime : COLORS.composite
    const x = x0 + (i % COLS) * cell
    const y = y0 + Math.floor(i / COLS) * cell
    ctx.fillRect(x + 1, y + 1, cell - 2, cell - 2)
  })
}

function drawQueen(ctx: CanvasRenderingContext2D, cx: number, cy: number, r: number): void {
  ctx.fillStyle = COLORS.queen
  ctx.beginPath()
  // A crown: five points over a base.
  ctx.moveTo(cx - r, cy + r * 0.6)
  for (let i = 0; i <= 4; i++) {
    const x = cx - r + (i * r) / 2
    ctx.lineTo(x, cy - r * 0.7)
    if (i < 4) ctx.lineTo(x + r / 4, cy - r * 0.05)
  }
  ctx.lineTo(cx + r, cy + r * 0.6)
  ctx.closePath()
  ctx.fill()
  ctx.fillRect(cx - r, cy + r * 0.7, 2 * r, r * 0.25)
}

function drawQueens(ctx: CanvasRenderingContext2D, n: number, prefix: number[], w: number, h: number): void {
  const size = Math.min(w, h) - 8
  const cell = size / n
  const x0 = (w - size) / 2
  const y0 = (h - size) / 2
  for (let row = 0; row < n; row++) {
    for (let col = 0; col < n; col++) {
      ctx.fillStyle = (row + col) % 2 === 0 ? COLORS.light : COLORS.dark
      ctx.fillRect(x0 + col * cell, y0 + row * cell, cell, cell)
    }
    if (row >= prefix.length) {
      ctx.fillStyle = COLORS.searched
      ctx.fillRect(x0, y0 + row * cell, size, cell)
    }
  }
  prefix.forEach((col, row) => drawQueen(ctx, x0 + (col + 0.5) * cell, y0 + (row + 0.5) * cell, cell * 0.34))
}

export function drawPiece(canvas: HTMLCanvasElement, piece: Piece | undefined): void {
  const ctx = canvas.getContext('2d')
  if (ctx === null) return
  const { width: w, height: h } = canvas
  ctx.fillStyle = COLORS.background
  ctx.fillRect(0, 0, w, h)
  if (piece?.type === 'primes') drawPrimes(ctx, piece.from, piece.to, w, h)
  else if (piece?.type === 'nqueens') drawQueens(ctx, piece.n, piece.prefix, w, h)
  else {
    ctx.fillStyle = COLORS.text
    ctx.font = '16px system-ui, sans-serif'
    ctx.textAlign = 'center'
    ctx.fillText(piece === undefined ? 'No unit yet' : piece.kind, w / 2, h / 2)
  }
}
