// The integrity benchmark's coordinator options. Everything that decides which results are accepted
// (quorum, replica placement, trust, spot checks) stays at the coordinator's defaults: the benchmark
// measures the defences as they ship. Two things change so that the simulated crowd looks like one
// spread over the Internet although it runs on one machine:
// - sign-up: cheap proof of work and no limit per address (sign-up cost is measured in signup.ts);
// - network rules: where the coordinator has them, loopback is trusted as a proxy (so each sign-up's
//   X-Forwarded-For is taken as its address) and the list of networks exempt from placement rules
//   is emptied (by default loopback and private ranges are exempt, so that one machine can run a
//   quorum). Options are looked up by name in the coordinator's defaults, so the benchmark runs on a
//   coordinator that has none of them and reports what it found.
import { DEFAULT_TUNING, type CoordinatorTuning } from '../coordinator/index.js'
import { BENCH_API_TUNING } from './api-access.js'
import { BENCH_SIGNUP_TUNING } from './nats-login.js'

/** Loopback in the forms a Node HTTP server reports it. */
const LOOPBACK = ['127.0.0.1', '::1', '::ffff:127.0.0.1']

/**
 * Honest identities the operator vouches for, as its own hosts: the anchors a fresh deployment starts
 * from. Nobody else is vouched for (the sign-up vouching of other benchmark clusters is off), so the
 * saboteurs, like every other volunteer, start untrusted.
 */
export const VOUCHED_HOSTS = 4

export interface IntegrityTuning {
  tuning: Partial<CoordinatorTuning>
  /** What was set beyond the defaults for the network rules, for the report; empty when none exist. */
  networkOptions: string[]
}

/** True for option names that list exempt networks (e.g. `networkExempt`, `placementExemptNetworks`). */
const isExemptionList = (name: string, value: unknown): boolean =>
  /exempt/i.test(name) && Array.isArray(value)

export function integrityTuning(): IntegrityTuning {
  const defaults = DEFAULT_TUNING as unknown as Record<string, unknown>
  const extra: Record<string, unknown> = {}
  const networkOptions: string[] = []
  if ('trustedProxies' in defaults) {
    const d = defaults['trustedProxies']
    extra['trustedProxies'] = Array.isArray(d) ? LOOPBACK : LOOPBACK.join(',')
    networkOptions.push(`trustedProxies: ${LOOPBACK.join(', ')}`)
  }
  for (const [name, value] of Object.entries(defaults)) {
    if (!isExemptionList(name, value)) continue
    extra[name] = []
    networkOptions.push(`${name}: none`)
  }
  return {
    tuning: {
      ...BENCH_SIGNUP_TUNING,
      ...BENCH_API_TUNING,
      vouchSignups: false,
      ...(extra as Partial<CoordinatorTuning>),
    },
    networkOptions,
  }
}
