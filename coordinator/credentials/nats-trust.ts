// The NATS trust chain of a Cohort deployment: an operator, a system account and the Cohort account,
// as nkeys and JWTs, and the nats-server configuration that trusts them (`resolver: MEMORY` with the
// account JWTs preloaded). Coordinators hold the Cohort account's seed and issue user JWTs from it:
// one for themselves (all subjects) and one per volunteer (its own subjects, see volunteer-issuer.ts).
import { createAccount, createOperator, createUser } from '@nats-io/nkeys'
import { encodeJwt, keyPairFromSeed, type AccountLimits } from './nats-jwt.js'

export interface NatsTrust {
  /** The operator JWT nats-server is configured with (`operator:`). */
  operatorJwt: string
  /** The operator's seed: kept by whoever may add accounts later; nats-server does not need it. */
  operatorSeed: string
  systemAccount: { publicKey: string; jwt: string }
  /** The Cohort account: coordinators and volunteers log in as its users. */
  account: { publicKey: string; jwt: string; seed: string }
}

/**
 * Account limits: no JetStream (no storage limits set), no imports or exports. Leaf nodes are allowed
 * (an operator's leaf servers at volunteer sites); volunteers' own JWTs cannot connect as one.
 */
const COHORT_ACCOUNT_LIMITS: AccountLimits = {
  subs: -1,
  data: -1,
  payload: -1,
  imports: 0,
  exports: 0,
  wildcards: true,
  conn: -1,
  leaf: -1,
}

const SYSTEM_ACCOUNT_LIMITS: AccountLimits = { ...COHORT_ACCOUNT_LIMITS, imports: -1, exports: -1 }

const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)

/** A fresh operator, system account and Cohort account. */
export function createNatsTrust(): NatsTrust {
  const operator = createOperator()
  const system = createAccount()
  const account = createAccount()
  const operatorJwt = encodeJwt(
    {
      subject: operator.getPublicKey(),
      name: 'cohort-operator',
      nats: { type: 'operator', version: 2, system_account: system.getPublicKey() },
    },
    operator,
  )
  const accountJwt = (name: string, kp: typeof account, limits: AccountLimits) =>
    encodeJwt({ subject: kp.getPublicKey(), name, nats: { type: 'account', version: 2, limits } }, operator)
  return {
    operatorJwt,
    operatorSeed: text(operator.getSeed()),
    systemAccount: {
      publicKey: system.getPublicKey(),
      jwt: accountJwt('SYS', system, SYSTEM_ACCOUNT_LIMITS),
    },
    account: {
      publicKey: account.getPublicKey(),
      jwt: accountJwt('cohort', account, COHORT_ACCOUNT_LIMITS),
      seed: text(account.getSeed()),
    },
  }
}

/** nats-server configuration lines that trust `trust`'s operator and preload its two accounts. */
export function trustConfigLines(trust: NatsTrust): string[] {
  return [
    `operator: ${JSON.stringify(trust.operatorJwt)}`,
    `system_account: ${JSON.stringify(trust.systemAccount.publicKey)}`,
    `resolver: MEMORY`,
    `resolver_preload: {`,
    `  ${trust.systemAccount.publicKey}: ${JSON.stringify(trust.systemAccount.jwt)}`,
    `  ${trust.account.publicKey}: ${JSON.stringify(trust.account.jwt)}`,
    `}`,
  ]
}

/** A user of the account of `accountSeed` with every permission: a coordinator's login. */
export function issueCoordinatorUser(
  accountSeed: string,
  name = 'coordinator',
): { jwt: string; seed: string } {
  const account = keyPairFromSeed(accountSeed, 'the NATS account seed', 'A')
  const user = createUser()
  const jwt = encodeJwt(
    {
      subject: user.getPublicKey(),
      name,
      nats: { type: 'user', version: 2, pub: {}, sub: {}, subs: -1, data: -1, payload: -1 },
    },
    account,
  )
  return { jwt, seed: text(user.getSeed()) }
}
