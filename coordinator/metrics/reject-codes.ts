// Why results were refused, as a fixed set of codes for a metric's label (a reason's free text,
// which names ids and states, would make a label without bound). The reasons are those the
// validator and the SUBMIT script answer with (validator.ts, store/scripts.ts); this table is the
// one place they are mapped, and a reason not in it counts as `other`.

export const REJECT_CODES = [
  'unknown-job',
  'bad-digest',
  'mismatched-ids',
  'malformed-output',
  'banned',
  'unknown-replica',
  'not-leased',
  'lease-ended',
  'job-ended',
  'other',
] as const

export type RejectCode = (typeof REJECT_CODES)[number]

const BY_PREFIX: readonly [string, RejectCode][] = [
  ['unknown job', 'unknown-job'],
  ['digest does not match', 'bad-digest'],
  ['replica, unit and job ids do not belong', 'mismatched-ids'],
  ['replica does not belong to that unit', 'mismatched-ids'],
  ['malformed output', 'malformed-output'],
  ['this identity is banned', 'banned'],
  ['unknown replica', 'unknown-replica'],
  ['replica was not leased to this worker', 'not-leased'],
  ['lease is no longer held', 'lease-ended'],
  ['job is ', 'job-ended'],
]

/** The code of a refusal's reason. */
export function rejectCode(reason: string): RejectCode {
  for (const [prefix, code] of BY_PREFIX) if (reason.startsWith(prefix)) return code
  return 'other'
}
