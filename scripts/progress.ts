// Watching a job: a progress bar on a terminal, a line per 10 % elsewhere.
import type { ApiClient, JobView } from './api-client.js'

const TERMINAL = new Set(['completed', 'failed', 'cancelled'])

function bar(job: JobView, width = 30): string {
  const filled = Math.round(job.progress * width)
  const pct = (job.progress * 100).toFixed(1).padStart(5)
  const extra = job.extraReplicas > 0 ? `, ${job.extraReplicas} extra replicas` : ''
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${pct}%  ${job.units.validated}/${job.units.total} units validated${extra}  (${job.state})`
}

/** Poll the job until it ends; returns its final view. `signal` stops watching early. */
export async function watchJob(
  api: ApiClient,
  id: string,
  out: NodeJS.WriteStream,
  signal?: AbortSignal,
  intervalMs = 250,
): Promise<JobView> {
  const tty = out.isTTY
  let lastDecile = -1
  for (;;) {
    const job = await api.job(id)
    if (tty) out.write(`\r${bar(job)}`)
    else {
      const decile = Math.floor(job.progress * 10)
      if (decile !== lastDecile || TERMINAL.has(job.state)) out.write(`${bar(job)}\n`)
      lastDecile = decile
    }
    if (TERMINAL.has(job.state) || signal?.aborted === true) {
      if (tty) out.write('\n')
      return job
    }
    await new Promise((r) => setTimeout(r, intervalMs))
  }
}
