// Tables of the lease-latency and end-to-end sections.
import type { E2eRow } from './e2e.js'
import type { LeaseLatencyResult } from './lease-latency.js'
import { fixed, table } from './report.js'

export function latencyTable(l: LeaseLatencyResult): string {
  const workers = l.workers.map((w) => `${w.threads}`).join(' + ')
  return [
    table(
      [
        'coordinator',
        'leases',
        'p50 ms',
        'p99 ms',
        'max ms',
        'verifyUnit p50 ms',
        'leases/s',
        'empty grants',
        'failed',
      ],
      l.phases.map((p) => {
        const x = p.latency
        return [
          p.phase === 'idle'
            ? 'idle (probes only)'
            : `busy (${l.workers.length} daemons ran ${p.unitsRunMeanwhile} units)`,
          String(x.count),
          fixed(x.p50Ms, 2),
          fixed(x.p99Ms, 2),
          fixed(x.maxMs, 1),
          fixed(x.verifyP50Ms, 3),
          fixed(x.leasesPerSecond, 0),
          `${x.empty.rate} rate, ${x.empty.leases} cap, ${x.empty.none} none`,
          x.failed === 0 ? '0' : `${x.failed} (${x.firstError ?? ''})`,
        ]
      }),
    ),
    '',
    `${l.identities} volunteer identities, each asking for 1 unit ${l.perIdentityPerSecond} times a second ` +
      `(below the per-identity refill of 10/s) and handing it back at once; a job of ${l.jobUnits} primes ` +
      `units at quorum 2. Latency: \`requestWork\` called (request sealed) until \`verifyUnit\` returned. ` +
      `Busy: daemons with ${workers} threads computing that same job meanwhile.`,
  ].join('\n')
}

export function e2eTable(rows: readonly E2eRow[]): string {
  const first = rows[0]
  return [
    table(
      [
        'job (default params)',
        'units',
        'baseline ms (units x 2)',
        'platform ms',
        'platform / baseline',
        'replicas run',
      ],
      rows.map((r) => [
        `${r.label} ${JSON.stringify(r.params)}`,
        String(r.units),
        fixed(r.baselineMedianMs),
        fixed(r.platformMedianMs),
        fixed(r.ratio, 2),
        r.replicasRun.join(', '),
      ]),
    ),
    '',
    first === undefined
      ? ''
      : `Platform: POST at quorum ${first.quorum} (spotCheckRate 1) until completed, ${first.workers} vouched ` +
        `daemons x ${first.threadsPerWorker} threads (\`cohort up --workers ${first.workers}\`). Baseline: ` +
        `the job's planned units, each computed twice, all at once on one piscina pool of ` +
        `${first.workers * first.threadsPerWorker} threads. Medians of ${first.platformMs.length} ` +
        `alternating runs per side after a warm-up of each.`,
  ].join('\n')
}
