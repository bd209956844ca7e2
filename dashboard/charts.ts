// The throughput chart: bars of units validated per bucket, scaled to the tallest.
import type { Throughput } from '../shared/ops-views.js'

export function drawThroughput(canvas: HTMLCanvasElement, t: Throughput): void {
  const g = canvas.getContext('2d')
  if (g === null) return
  const { width, height } = canvas
  g.clearRect(0, 0, width, height)
  const max = Math.max(1, ...t.units)
  const w = width / Math.max(1, t.units.length)
  g.fillStyle = '#2e9d57'
  t.units.forEach((n, i) => {
    const h = Math.round((n / max) * (height - 14))
    g.fillRect(i * w + 1, height - h, Math.max(1, w - 2), h)
  })
  g.fillStyle = '#6b7380'
  g.font = '11px system-ui, sans-serif'
  g.fillText(`max ${max} per ${t.bucketMs / 1000} s`, 4, 11)
}

/** Units validated in the last minute (the last six 10-second buckets). */
export function lastMinute(t: Throughput): number {
  const n = Math.round(60_000 / t.bucketMs)
  return t.units.slice(-n).reduce((a, b) => a + b, 0)
}
