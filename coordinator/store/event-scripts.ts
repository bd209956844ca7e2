// Each job's event log: a Redis Stream (`<p>job:<id>:events`) that the scripts changing a job append
// to in the same atomic step, so every coordinator sees the same events in the same order whichever
// of them validated a unit. GET /v1/jobs/:id/events reads it (coordinator/http/events-routes.ts);
// its entry ids are the Server-Sent Events' ids, so a client resumes where it stopped.
//
// Entry fields, by `type`:
//   state     state, error (when failed)
//   unit      index, validated, failed, total (one validated unit; the counts after it)
//   progress  validated, failed, total (the total is known, or a unit was reopened)
//   result    (the result is ready)
//   revised   changed (1 | 0), revisions, units (a revision of the result was merged)

/** Entries kept per job (approximately: `MAXLEN ~`); older ones are trimmed. */
export const EVENT_LOG_MAX = 20_000

/** The stream key of a job's events. */
export function eventsKey(prefix: string, jobId: string): string {
  return `${prefix}job:${jobId}:events`
}

/** Lua helpers (need `p`, the key prefix): append one entry to a job's event log. */
export const JOB_EVENT_HELPER = `
local function jobEvent(jid, kind, ...)
  redis.call('XADD', p..'job:'..jid..':events', 'MAXLEN', '~', ${EVENT_LOG_MAX}, '*', 'type', kind, ...)
end
local function jobCounts(jid)
  local c = redis.call('HMGET', p..'job:'..jid, 'unitsValidated', 'unitsFailed', 'unitsTotal')
  return c[1] or '0', c[2] or '0', c[3] or '0'
end
local function jobUnitEvent(jid, uid)
  local v, f, t = jobCounts(jid)
  jobEvent(jid, 'unit', 'index', string.match(uid, ':(%d+)$') or '-1', 'validated', v, 'failed', f, 'total', t)
end
local function jobProgressEvent(jid)
  local v, f, t = jobCounts(jid)
  jobEvent(jid, 'progress', 'validated', v, 'failed', f, 'total', t)
end
`

/** setUnitsTotal(prefix, jid, total, unitMs): the job's unit count and unit estimate, and its progress event. */
export const SET_UNITS_TOTAL = `
local p, jid = ARGV[1], ARGV[2]
${JOB_EVENT_HELPER}
redis.call('HSET', p..'job:'..jid, 'unitsTotal', ARGV[3], 'unitMs', ARGV[4])
jobProgressEvent(jid)
return 1
`

/** failJob(prefix, jid, reason, now): the job failed, whatever its state; its state event. */
export const FAIL_JOB = `
local p, jid, reason, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
${JOB_EVENT_HELPER}
redis.call('HSET', p..'job:'..jid, 'state', 'failed', 'error', reason, 'updatedAt', now)
redis.call('SREM', p..'active', jid)
redis.call('ZADD', p..'ended', now, jid)
jobEvent(jid, 'state', 'state', 'failed', 'error', reason)
return 1
`
