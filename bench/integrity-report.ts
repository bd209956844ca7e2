// The integrity section's table (bench/integrity.ts): one row per scenario, and the notes that say
// how far the figures reach.
import { VOUCHED_HOSTS } from './integrity-tuning.js'
import type { IntegrityResult, ScenarioResult } from './integrity.js'

/** Upper end of the 95 % interval of a rate when 0 of `n` were seen (the rule of three). */
export const ruleOfThree = (n: number): number => 3 / n

const pct = (f: number): string => `${Math.round(f * 100)} %`
const rate = (x: number): string => (x === 0 ? '0' : x < 0.001 ? x.toExponential(1) : x.toFixed(3))

function jobCell(s: ScenarioResult): string {
  const result = s.resultRight === undefined ? '' : s.resultRight ? ', result right' : ', **result wrong**'
  return `${s.state}${result} (${s.seconds} s)`
}

function wrongCell(s: ScenarioResult): string {
  if (s.validated === 0) return 'no unit validated'
  const r = s.wrongAccepted / s.validated
  return s.wrongAccepted === 0
    ? `0 of ${s.validated} (< ${rate(ruleOfThree(s.validated))})`
    : `**${s.wrongAccepted} of ${s.validated} = ${rate(r)}**`
}

function catchCell(s: ScenarioResult): string {
  const c = s.catching
  if (s.saboteurs === 0) return '—'
  if (c.lied === 0) return 'none lied'
  if (c.caught === 0) return `not caught (0 of ${c.lied})`
  return `${c.caught} of ${c.lied}: ${c.caughtAfterS} s, ${c.caughtAfterResults} wrong results`
}

function invalidCell(s: ScenarioResult): string {
  const c = s.catching
  if (s.saboteurs === 0 || c.lied === 0) return '—'
  if (c.markedInvalid === 0) return `0 of ${c.lied}`
  return `${c.markedInvalid} of ${c.lied}: ${c.invalidAfterS} s, ${c.invalidAfterResults} wrong results`
}

export function integrityTable(r: IntegrityResult): string {
  const rows = r.scenarios.map((s) =>
    [
      s.strategy,
      s.saboteurs === 0 ? '0' : pct(s.f),
      `${s.honest} + ${s.saboteurs}`,
      jobCell(s),
      wrongCell(s),
      s.wrongAtEnd === s.wrongAccepted ? String(s.wrongAtEnd) : `${s.wrongAtEnd} (was ${s.wrongAccepted})`,
      `${s.replicasPerUnit} / ${s.replicasLastHalf}`,
      String(s.wrongResultsSent),
      catchCell(s),
      invalidCell(s),
      String(s.honestRedone),
      String(s.honestCaught),
    ].join(' | '),
  )
  const n = r.units
  const network =
    r.networkOptions.length === 0
      ? 'this coordinator has no network options (every sign-up counts as loopback)'
      : `network options set: ${r.networkOptions.join('; ')}`
  return [
    '| saboteurs | f | H + S | job | wrong accepted / validated unit (95 % bound if 0) | wrong left at end | results / unit (all / last half) | wrong results sent | caught (median time, wrong results by then) | marked invalid (same) | honest units redone | honest caught |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((row) => `| ${row} |`),
    '',
    `One run per scenario, each on a fresh coordinator: ${n} units of 1000 numbers, ${r.identities} identities (Sybil groups of ${r.sybilGroup}, ` +
      `turncoats honest for ${r.honestFor} results, compute ${r.computeMs[0]}–${r.computeMs[1]} ms per unit ` +
      `but fast liars 0); the operator vouches for ${VOUCHED_HOSTS} honest identities (its own hosts), every ` +
      `other identity starts untrusted and earns credibility; ${network}. With 0 wrong of ${n} units the rate is below ${rate(ruleOfThree(n))} ` +
      `(95 %): showing 1e-4 takes 30,000 units with none wrong, 1e-3 takes 3,000.`,
  ].join('\n')
}
