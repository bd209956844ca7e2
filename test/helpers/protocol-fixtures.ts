// Test helper: hand-built protocol messages (units, results, worker requests), raw NATS requests,
// and a fake coordinator on the real NATS that grants the units a test gives it.
import type { Msg, NatsConnection, Subscription } from '@nats-io/nats-core'
import { builtinJobTypes } from '../../jobs/index.js'
import {
  COORDINATOR_QUEUE,
  decode,
  encode,
  parseEnvelope,
  parseResultBatch,
  parseResultPayload,
  randomId,
  seal,
  sha256Hex,
  LIMITS,
  PEER_LIMITS,
  openUnit,
  parseUnitPayload,
  parseWorkGrant,
  type Identity,
  type ResultItem,
  type ResultPayload,
  type SignedEnvelope,
  type SignedKind,
  type Subjects,
  type UnitPayload,
  type WorkGrant,
} from '../../shared/index.js'

export const PRIMES = 'primes@1'

/** The payloads of the units a grant (or a handoff) carries, opened as a worker opens them. */
export const openUnits = (grant: { units: SignedEnvelope[] }): Promise<UnitPayload[]> =>
  Promise.all(grant.units.map(async (u) => parseUnitPayload(await openUnit(u))))

/** A `primes@1` unit payload for `worker`, valid for a minute, signed-to-be by the key `kid`. */
export function unitPayload(worker: string, kid: string, over: Partial<UnitPayload> = {}): UnitPayload {
  const now = Date.now()
  const jobId = over.jobId ?? `job-${randomId()}`
  const unitId = over.unitId ?? `${jobId}:0`
  return {
    type: 'unit',
    v: 1,
    unitId,
    replicaId: `${unitId}:r1`,
    jobId,
    kind: PRIMES,
    input: { from: 0, to: 1000 },
    worker,
    issuedAt: now,
    expiresAt: now + 60_000,
    nonce: randomId(),
    kid,
    ...over,
  }
}

/** What an honest worker computes for a unit: msgpack output and its SHA-256. */
export async function computeOutput(
  kind: string,
  input: unknown,
): Promise<{ value: unknown; output: Uint8Array; digest: string }> {
  const jobType = builtinJobTypes.get(kind)
  if (jobType === undefined) throw new Error(`no job type ${kind}`)
  const value = jobType.run(jobType.parseInput(input), {}) as unknown
  const output = encode(value)
  return { value, output, digest: await sha256Hex(output) }
}

export type ResultFields = ResultItem

/** A result payload as a worker signs it; `over` replaces any field (worker, at, ...). */
export function resultPayload(
  identity: Identity,
  fields: ResultFields,
  over: Partial<ResultPayload> = {},
): ResultPayload {
  return {
    type: 'result',
    v: 1,
    ...fields,
    worker: identity.id,
    at: Date.now(),
    nonce: randomId(),
    ...over,
  }
}

/** A signed worker request (`work.request`, `lease.renew`, `lease.release`) with fresh `at` and nonce. */
export function sealWorkerRequest(
  kind: Exclude<SignedKind, 'unit' | 'result'>,
  identity: Identity,
  fields: Record<string, unknown>,
  over: Record<string, unknown> = {},
): Promise<SignedEnvelope> {
  return seal(
    kind,
    { type: kind, v: 1, ...fields, worker: identity.id, at: Date.now(), nonce: randomId(), ...over },
    identity,
  )
}

/** Send raw bytes as a NATS request and decode the reply (whatever it is). */
export async function rawRequest(
  nc: NatsConnection,
  subject: string,
  data: Uint8Array,
  timeoutMs = 5_000,
): Promise<unknown> {
  const msg = await nc.request(subject, data, { timeout: timeoutMs })
  return decode(msg.data)
}

/**
 * Take one lease as the volunteer `identity` (on its own connection `nc`): signed work requests for
 * `kind` until a unit is granted, within `timeoutMs`. Returns the granted unit (never run).
 */
export async function takeLease(
  nc: NatsConnection,
  subjects: Subjects,
  identity: Identity,
  kind: string,
  timeoutMs = 15_000,
): Promise<UnitPayload> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const req = await sealWorkerRequest('work.request', identity, { want: 1, accepts: [kind] })
    const grant = parseWorkGrant(await rawRequest(nc, subjects.workRequest, encode(req)))
    const unit = grant.units[0]
    if (unit !== undefined) return parseUnitPayload(await openUnit(unit))
    if (Date.now() > deadline) throw new Error(`no ${kind} unit was granted within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, Math.min(grant.retryAfterMs, 100)))
  }
}

/** A copy of `bytes` with one bit flipped at `index` (default: the middle). */
export function flipBit(bytes: Uint8Array, index = Math.floor(bytes.length / 2)): Uint8Array {
  const out = new Uint8Array(bytes)
  out[index] = (out[index] ?? 0) ^ 0x01
  return out
}

export interface ReceivedResult {
  envelope: SignedEnvelope
  payload: ResultPayload
}

export interface FakeCoordinator {
  /** Grants still to hand out, one per work request, in order; then empty grants. */
  readonly grants: SignedEnvelope[][]
  /** Work requests seen (decoded envelope bodies, unverified). */
  readonly requests: unknown[]
  /** Results submitted (decoded, not verified: the test checks signatures itself). */
  readonly results: ReceivedResult[]
  stop(): void
}

/**
 * A stand-in for the coordinators on `subjects`: answers work requests with the queued grants (an
 * empty grant once they run out, with a long retry so the worker waits for a wake-up), accepts every
 * result, and answers renewals and releases. Subscriptions are flushed before this resolves.
 */
export async function startFakeCoordinator(
  nc: NatsConnection,
  subjects: Subjects,
  grants: SignedEnvelope[][] = [],
): Promise<FakeCoordinator> {
  const requests: unknown[] = []
  const results: ReceivedResult[] = []
  const subs: Subscription[] = []
  const on = (subject: string, answer: (msg: Msg) => unknown): void => {
    subs.push(
      nc.subscribe(subject, {
        queue: COORDINATOR_QUEUE,
        callback: (err, msg) => {
          if (err) return
          let reply: unknown
          try {
            reply = answer(msg)
          } catch (e) {
            reply = { type: 'error', v: 1, code: 'bad-request', message: (e as Error).message }
          }
          if (msg.reply) msg.respond(encode(reply))
        },
      }),
    )
  }
  const body = (msg: Msg, kind: SignedKind): Record<string, unknown> => {
    const env = parseEnvelope(decode(msg.data), kind, LIMITS.maxOutputBytes + 4096)
    return decode(env.body) as Record<string, unknown>
  }
  on(subjects.workRequest, (msg) => {
    requests.push(body(msg, 'work.request'))
    const units = grants.shift()
    return {
      type: 'work.grant',
      v: 1,
      units: units ?? [],
      retryAfterMs: units === undefined ? 600_000 : 0,
    } satisfies WorkGrant
  })
  on(subjects.resultSubmit, (msg) => {
    const raw = decode(msg.data) as Record<string, unknown>
    if (raw['kind'] === 'result.batch') {
      // Each result of a batch is recorded as if it came alone, with the batch's envelope.
      const envelope = parseEnvelope(raw, 'result.batch', 2 * LIMITS.maxBatchOutputBytes)
      const batch = parseResultBatch(decode(envelope.body))
      const { results: items, ...signed } = batch
      for (const item of items)
        results.push({ envelope, payload: { ...signed, ...item, type: 'result', v: 1 } })
      const acks = items.map(() => ({ type: 'result.ack', v: 1, status: 'accepted' }))
      return { type: 'result.acks', v: 1, acks }
    }
    const envelope = parseEnvelope(raw, 'result', LIMITS.maxOutputBytes + 4096)
    results.push({ envelope, payload: parseResultPayload(decode(envelope.body)) })
    return { type: 'result.ack', v: 1, status: 'accepted' }
  })
  on(subjects.leaseRenew, (msg) => {
    const ids = (body(msg, 'lease.renew')['replicaIds'] as string[] | undefined) ?? []
    const expiresAt = Object.fromEntries(ids.map((id) => [id, Date.now() + 60_000]))
    return { type: 'lease.renewed', v: 1, expiresAt, lost: [] }
  })
  on(subjects.leaseRelease, (msg) => {
    const ids = (body(msg, 'lease.release')['replicaIds'] as string[] | undefined) ?? []
    return { type: 'lease.released', v: 1, released: ids.length }
  })
  await nc.flush()
  return {
    grants,
    requests,
    results,
    stop() {
      for (const s of subs) s.unsubscribe()
    },
  }
}

/** `from` gives `replicaIds` to `to`, valid for `PEER_LIMITS.transferTtlMs`; `over` replaces fields. */
export function sealTransfer(
  from: Identity,
  to: string,
  replicaIds: string[],
  over: Record<string, unknown> = {},
): Promise<SignedEnvelope> {
  const at = Date.now()
  const payload = {
    type: 'lease.transfer',
    v: 1,
    worker: from.id,
    at,
    nonce: randomId(),
    to,
    replicaIds,
    expiresAt: at + PEER_LIMITS.transferTtlMs,
    ...over,
  }
  return seal('lease.transfer', payload, from)
}
