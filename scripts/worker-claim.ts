// `cohort worker claim --name … [--team …]`: sign a claim of a display name and team with this
// worker's identity file and send it to the coordinator; print what the coordinator recorded.
import { ConfigError, formatCredit } from '../shared/index.js'
import { claimStanding, loadIdentity } from '../worker/index.js'

export interface ClaimOptions {
  keyFile: string
  coordinatorUrl: string | undefined
  name: string
  team?: string | undefined
}

export async function claimName(o: ClaimOptions, out: NodeJS.WritableStream): Promise<void> {
  if (o.coordinatorUrl === undefined)
    throw new ConfigError('--coordinator (or COHORT_COORDINATOR_URL) is needed to send the claim')
  const identity = await loadIdentity(o.keyFile)
  const rec = await claimStanding(o.coordinatorUrl, identity, { name: o.name, team: o.team })
  out.write(
    `identity ${rec.id} is now "${rec.name ?? ''}"${rec.team === undefined ? ', no team' : ` of team "${rec.team}"`}; ` +
      `credit ${formatCredit(rec.creditMs)}, ${rec.unitsValidated} units validated\n`,
  )
}
