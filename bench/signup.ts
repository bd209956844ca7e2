// What a volunteer identity costs: sign-up time with the default proof of work (challenge, proof,
// signature, JWT issued), and the proof of work alone, over a number of sign-ups against a real
// coordinator; plus the hash rate, from which the expected cost of one identity follows.
import { createUser } from '@nats-io/nkeys'
import { createCoordinator, DEFAULT_TUNING } from '../coordinator/index.js'
import { builtinJobTypes } from '../jobs/index.js'
import { generateIdentity } from '../shared/index.js'
import { signUp } from '../worker/index.js'
import type { Endpoints } from './cluster.js'
import { benchLogger, progress } from './log.js'
import { coordinatorLogin } from './nats-login.js'
import { median, now, percentile, round } from './stats.js'

export interface SignupOptions {
  endpoints: Endpoints
  /** Sign-ups measured. */
  count: number
  /** Proof-of-work bits. Default: the coordinator's default. */
  bits?: number
}

export interface SignupResult {
  bits: number
  count: number
  /** Whole sign-up (challenge, proof of work, signature, POST, JWT), ms. */
  totalMs: { median: number; p90: number }
  /** The proof of work alone, ms. */
  powMs: { median: number; p90: number }
  /** Hashes tried per second by the solver (one core). */
  hashesPerSecond: number
  /** Expected CPU seconds per identity: 2^bits hashes at that rate. */
  expectedCpuSeconds: number
  /** The default limit per source address, and its window. */
  perAddress: number
  windowMs: number
}

export async function runSignup(opts: SignupOptions): Promise<SignupResult> {
  if (opts.endpoints.natsAccountSeed === undefined)
    throw new Error('the sign-up benchmark needs the NATS account seed (the private nats-server)')
  const bits = opts.bits ?? DEFAULT_TUNING.signupPowBits
  const prefix = `bench-signup-${process.pid}-${Date.now()}`
  const coordinator = createCoordinator({
    redisUrl: opts.endpoints.redisUrl,
    natsUrl: opts.endpoints.natsUrl,
    ...coordinatorLogin(opts.endpoints.natsCoordinator, opts.endpoints.natsAccountSeed),
    identity: await generateIdentity(true),
    jobTypes: builtinJobTypes.values(),
    log: benchLogger('coordinator'),
    port: 0,
    // The default proof of work; the limit per address is raised, since every sign-up here comes from one.
    tuning: {
      redisPrefix: `${prefix}:`,
      subjectPrefix: prefix,
      signupPowBits: bits,
      signupPerAddress: 1_000_000,
    },
  })
  await coordinator.start()
  const totals: number[] = []
  const pows: number[] = []
  let tried = 0
  try {
    for (let i = 0; i < opts.count; i++) {
      const identity = await generateIdentity(true)
      const started = now()
      await signUp({
        coordinatorUrl: coordinator.url,
        identity,
        natsKey: createUser().getPublicKey(),
        onPow: (p) => {
          pows.push(p.ms)
          tried += p.tried
        },
      })
      totals.push(now() - started)
      progress(`signup: ${i + 1}/${opts.count} in ${totals.at(-1)?.toFixed(0)} ms`)
    }
  } finally {
    await coordinator.stop()
  }
  const powSum = pows.reduce((a, b) => a + b, 0)
  const rate = tried / (powSum / 1000)
  return {
    bits,
    count: opts.count,
    totalMs: { median: round(median(totals), 0), p90: round(percentile(totals, 90), 0) },
    powMs: { median: round(median(pows), 0), p90: round(percentile(pows, 90), 0) },
    hashesPerSecond: Math.round(rate),
    expectedCpuSeconds: round(2 ** bits / rate, 2),
    perAddress: DEFAULT_TUNING.signupPerAddress,
    windowMs: DEFAULT_TUNING.signupWindowMs,
  }
}

export function signupTable(s: SignupResult): string {
  const hours = (n: number): string => (n * (s.windowMs / 3600_000)).toFixed(0)
  return [
    '| proof of work | sign-ups | sign-up median | sign-up p90 | PoW median | PoW p90 | hashes/s (1 core) | expected CPU s / identity |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    `| ${s.bits} bits | ${s.count} | ${s.totalMs.median} ms | ${s.totalMs.p90} ms | ${s.powMs.median} ms | ${s.powMs.p90} ms | ${s.hashesPerSecond.toLocaleString('en-US')} | ${s.expectedCpuSeconds} |`,
    '',
    `1,000 identities: about ${Math.round(1000 * s.expectedCpuSeconds)} CPU seconds of proof of work; ` +
      `from one address at ${s.perAddress} sign-ups per ${s.windowMs / 3600_000} h, ${hours(1000 / s.perAddress)} hours.`,
  ].join('\n')
}
