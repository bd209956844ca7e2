// The human-readable report: markdown tables of the overhead, throughput and peer-to-peer results.
import type { HoardingResult } from './hoarding.js'
import type { CpuShares } from './machine.js'
import type { OverheadResult, OverheadRow } from './overhead.js'
import type { P2pModeRun, P2pResult } from './p2p.js'
import { median } from './stats.js'
import type { ThroughputResult } from './throughput.js'

export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`
  return [line(headers), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...rows.map(line)].join('\n')
}

export const fixed = (x: number, digits = 0): string => x.toFixed(digits)
export const pct = (x: number): string => `${(x * 100).toFixed(0)}%`

/** Columns as header and cell together, so the two cannot drift apart. */
const OVERHEAD_COLUMNS: readonly [string, (r: OverheadRow) => string][] = [
  ['unit (measured)', (r) => `${r.targetMs} ms (${fixed(r.calibratedMs, 2)})`],
  ['unitSize', (r) => String(r.unitSize)],
  ['units', (r) => String(r.units)],
  ['threads', (r) => String(r.threads)],
  ['baseline ms (a)', (r) => fixed(r.baselineMedianMs)],
  ['platform ms (b)', (r) => fixed(r.platformMedianMs)],
  ['pool ms/unit', (r) => fixed(r.poolMsPerUnit, 2)],
  ['b/a', (r) => fixed(r.ratio, 2)],
  ['extra ms/unit', (r) => fixed(r.extraMsPerUnit, 2)],
  ['runner busy', (r) => pct(r.runnerBusy)],
  ['wait between units ms', (r) => (r.medianGapMs === null ? '-' : fixed(r.medianGapMs, 1))],
  ['coordinator loop', (r) => pct(r.coordinatorEventLoopUtilization)],
  ['worker loop', (r) => pct(r.workerEventLoopUtilization)],
]

export function overheadTable(o: OverheadResult): string {
  const latency = o.latency
  return [
    table(
      OVERHEAD_COLUMNS.map(([header]) => header),
      o.rows.map((r) => OVERHEAD_COLUMNS.map(([, cell]) => cell(r))),
    ),
    '',
    `A job of one 1000-number unit: first unit started ${fixed(latency.postToFirstStartMs)} ms after the POST, ` +
      `job completed after ${fixed(latency.postToCompletedMs)} ms (medians).`,
  ].join('\n')
}

export function throughputTable(t: ThroughputResult): string {
  const med = (pick: (r: ThroughputResult['runs'][number]) => number): number => median(t.runs.map(pick))
  return table(
    ['measure', 'value'],
    [
      ['units (unitSize 1000), quorum', `${t.units}, ${t.quorum}`],
      [
        'workers x threads, bufferUnits',
        `${t.workers} x ${t.threadsPerWorker}, ${t.bufferUnits ?? 'sized in time'}`,
      ],
      ['units validated/s (first unit started -> completed)', fixed(t.unitsPerSecond)],
      ['results accepted/s', fixed(t.resultsPerSecond)],
      ['baseline units/s (direct piscina)', fixed(t.baselineUnitsPerSecond)],
      ['validated units/s / baseline units/s', fixed(t.ratio, 4)],
      ['POST -> first unit started ms', fixed(med((r) => r.postToFirstStartMs))],
      ['first unit started -> all validated ms', fixed(med((r) => r.firstStartToValidatedMs))],
      ['first unit started -> completed ms', fixed(med((r) => r.firstStartToCompletedMs))],
      ['coordinator event loop busy', pct(med((r) => r.coordinatorEventLoopUtilization))],
      ['worker daemons event loop busy', pct(med((r) => r.workersEventLoopUtilization))],
      [
        'coordinator loop ms per result',
        fixed(
          med((r) => r.coordinatorMsPerResult),
          2,
        ),
      ],
      [
        'runner thread wait between units ms',
        fixed(
          med((r) => r.medianGapMs ?? NaN),
          1,
        ),
      ],
      [
        'CPU ms: this process / Redis + NATS',
        `${fixed(med((r) => r.cpuMs))} / ${fixed(med((r) => r.servicesCpuMs))}`,
      ],
      ['machine busy (all cores, POST -> completed)', pct(med((r) => r.machineBusy))],
    ],
  )
}

const bytesCell = (n: number): string =>
  `${Math.round(n).toLocaleString('en-US')} (${(n / 1024 / 1024).toFixed(1)} MiB)`

export function p2pTable(p: P2pResult): string {
  const med = (mode: 'clientServer' | 'p2p', pick: (m: P2pModeRun) => number): number =>
    median(p.runs.map((r) => pick(r[mode])))
  /** A measure in both modes, and p2p / client-server when `ratio`. */
  const row = (
    label: string,
    pick: (m: P2pModeRun) => number,
    cell: (x: number) => string,
    ratio = false,
  ) => {
    const cs = med('clientServer', pick)
    const pp = med('p2p', pick)
    return [label, cell(cs), cell(pp), ratio ? fixed(pp / cs, 3) : '']
  }
  const int = (x: number): string => fixed(x)
  const two = (x: number): string => fixed(x, 2)
  const seconds = (ms: number): string => fixed(ms / 1000, 1)
  const threads = `${p.threads} thread${p.threads === 1 ? '' : 's'}`
  const runs = `${p.runs.length} run${p.runs.length === 1 ? '' : 's'}`
  return [
    table(
      ['measure', 'client-server', 'peer to peer', 'p2p / client-server'],
      [
        row('coordinator egress, bytes (chunk.get payloads)', (m) => m.coordinatorBytes, bytesCell, true),
        row('coordinator egress / input size', (m) => m.coordinatorBytes / p.bytes, two),
        row('chunks + manifests the coordinator served', (m) => m.coordinatorChunks, int),
        row(`all ${p.peers} peers hold the input, ms`, (m) => m.allMs, int, true),
        row('first peer holds the input, ms', (m) => m.firstMs, int, true),
        row('bytes peers sent each other', (m) => m.bytesFromPeers, bytesCell),
        row('coordinator event loop busy', (m) => m.coordinatorEventLoopUtilization, pct),
        row(`peers' event loops busy (mean of ${threads})`, (m) => m.peersEventLoopUtilization, pct),
        row('CPU s: coordinator + peers (this process)', (m) => m.cpuMs, seconds, true),
        row('CPU s: Redis + NATS', (m) => m.servicesCpuMs, seconds, true),
        row('other processes (share of all cores)', (m) => m.cpu.others, pct),
      ],
    ),
    '',
    `Input: ${bytesCell(p.bytes)} in ${p.chunks} chunks, manifest ${p.manifestBytes} bytes; ` +
      `${p.peers} fresh peers per mode and run on ${threads}, all resolving at once. ` +
      `Plain client-server sends at least ${p.peers} x the input = ` +
      `${bytesCell(p.clientServerMinimumBytes)}. ` +
      `The p2p peers heard of each other ${fixed(med('p2p', (m) => m.meshMs ?? NaN))} ms after starting ` +
      `(announce every ${p.announceMs} ms), before the clock started. Medians of ${runs}; ` +
      `"other processes" is their share of all cores' time during the resolve.`,
  ].join('\n')
}

/** Where the cores' time went during a section; a warning when other processes took a noticeable share. */
export function cpuLine(c: CpuShares): string {
  const line =
    `CPU time of all cores during this section: benchmark process ${pct(c.own)}, ` +
    `Redis + NATS ${pct(c.services)}, other processes ${pct(c.others)}.`
  return c.others > 0.1 ? `${line} **Other processes were busy: these figures are low and noisy.**` : line
}

export function hoardingTable(h: HoardingResult): string {
  const rows = [0, h.hoarders].map((n) => {
    const runs = h.runs.filter((r) => r.hoarders === n)
    const med = (pick: (r: HoardingResult['runs'][number]) => number): string => fixed(median(runs.map(pick)))
    return [
      String(n),
      runs.map((r) => r.state).join(', '),
      med((r) => r.ms),
      med((r) => r.hoardedLeases),
      med((r) => r.leasesExpired + r.renewalsRefused),
      med((r) => r.leaseCapReached),
    ]
  })
  return [
    table(
      [
        'hoarders',
        'job state',
        'POST -> completed ms',
        'leases hoarded',
        'leases taken back',
        'requests at the cap',
      ],
      rows,
    ),
    '',
    `${h.units} units of primes (10^6 numbers each) at quorum ${h.quorum}, ${h.workers} honest daemons x ` +
      `${h.threadsPerWorker} threads; tuning ${JSON.stringify(h.tuning)}. ` +
      `Completion time with ${h.hoarders} hoarders / without: ${fixed(h.ratio, 2)} (medians).`,
  ].join('\n')
}
