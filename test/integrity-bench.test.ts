// The integrity benchmark's quick mode, end to end on private Redis and NATS: every scenario runs,
// the table has a row for each, and the figures hang together. Whether the integrity goals are met
// is what the benchmark reports, not what this checks: it checks that the harness measures.
import test from 'ava'
import { integrityOptions, runIntegrity, STRATEGIES } from '../bench/integrity.js'
import { integrityTable } from '../bench/integrity-report.js'
import { useServices } from './helpers/services.js'

const services = useServices(test, { websocket: false })

test('integrity bench - the quick mode runs every scenario and its figures are consistent', async (t) => {
  t.timeout(300_000)
  const s = services()
  const options = integrityOptions(
    {
      redisUrl: s.redisUrl,
      natsUrl: s.natsUrl,
      natsCoordinator: s.natsCoordinator,
      natsAccountSeed: s.natsAccountSeed,
    },
    true,
  )
  const result = await runIntegrity({ ...options, progress: (line) => t.log(line) })
  const expected = [
    { strategy: 'honest', f: 0 },
    ...options.fractions.flatMap((f) => STRATEGIES.map((strategy) => ({ strategy, f }))),
  ]
  t.deepEqual(
    result.scenarios.map((r) => ({ strategy: r.strategy, f: r.f })),
    expected,
  )

  for (const r of result.scenarios) {
    const what = `${r.strategy} at f=${r.f}`
    t.is(r.saboteurs, Math.round(r.f * options.identities), what)
    t.is(r.honest + r.saboteurs, options.identities, what)
    t.true(Number.isInteger(r.validated) && r.validated >= 0 && r.validated <= r.units, what)
    t.true(r.wrongAtEnd <= r.validated, what)
    t.true(r.wrongAccepted <= r.units, what)
    if (r.validated > 0) t.true(r.replicasPerUnit >= 1 && Number.isFinite(r.replicasPerUnit), what)
    // Nothing wrong can be accepted unless some saboteur sent something wrong.
    if (r.wrongAccepted > 0) t.true(r.wrongResultsSent > 0, what)
    t.true(r.catching.caught <= r.catching.lied && r.catching.markedInvalid <= r.catching.lied, what)
    // Two readings of the outcome agree: every wrong answer overstates a unit's count, so the job's
    // merged total is the true one exactly when no validated unit is wrong.
    if (r.state === 'completed' && r.validated === r.units) t.is(r.resultRight, r.wrongAtEnd === 0, what)
  }

  // The honest crowd: everything validated, nothing wrong, nobody accused.
  const honest = result.scenarios[0]!
  t.is(honest.state, 'completed')
  t.is(honest.validated, options.units)
  t.is(honest.wrongAccepted, 0)
  t.is(honest.wrongResultsSent, 0)
  t.is(honest.resultRight, true)
  t.is(honest.honestCaught, 0)
  t.is(honest.honestRedone, 0)
  // The saboteurs did cheat.
  t.true(result.scenarios.reduce((n, r) => n + r.wrongResultsSent, 0) > 0)

  const table = integrityTable(result).split('\n')
  const names = new RegExp(`^\\| (honest|${STRATEGIES.join('|')}) \\| `)
  const rows = table.filter((l) => names.test(l))
  t.is(rows.length, expected.length)
  expected.forEach((e, i) => {
    t.true(rows[i]!.startsWith(`| ${e.strategy} | ${e.f === 0 ? '0' : `${Math.round(e.f * 100)} %`} |`))
    t.is(rows[i]!.split(' | ').length, 12)
  })
})
