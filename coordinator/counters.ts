// Counters a coordinator keeps about itself, served at GET /v1/stats. Per process, not shared.

export interface Counters {
  /** NATS messages that did not decode, did not verify, or broke a message rule. */
  malformed: number
  /** Requests refused because too many were in flight. */
  busy: number
  unitsLeased: number
  resultsAccepted: number
  resultsDuplicate: number
  resultsRejected: number
  unitsValidated: number
  unitsReissued: number
  unitsFailed: number
  leasesExpired: number
  leasesReleased: number
  /** Work requests refused by the per-worker rate limit. */
  workRequestsLimited: number
  /** Work requests that got no units while the worker had room (an idle worker asking). */
  emptyGrants: number
  /**
   * `work.available` wake-ups sent for newly ready replicas: one per grant's worth of them (the
   * average units per grant), at most `wakeMax` at once.
   */
  wakeUpsSent: number
  /** Wake-ups sent again for replicas still waiting a second later (their first wake-ups found no taker). */
  rewakesSent: number
  /** Work requests that got fewer units than asked for because the worker was at its lease cap. */
  leaseCapReached: number
  /** Renewals refused because the replica's lease lifetime was over (the replica was reissued). */
  renewalsRefused: number
  jobsCompleted: number
  httpErrors: number
  /** Modules refused at upload for breaking a rule. */
  modulesRefused: number
  /** Jobs failed because a unit settled on a failure (a trap, a time limit). */
  jobsFailed: number
  /** Chunks and manifests of datasets served over NATS (`chunk.get`). */
  chunksServed: number
  /** Payload bytes of those chunks and manifests: the coordinator's egress for content. */
  chunkBytesServed: number
  /** Modules served whole over NATS (`module.get`); large ones otherwise travel as chunks. */
  modulesServed: number
  /** Bytes of those modules. */
  moduleBytesServed: number
  /** Leases moved from one worker to another by a claimed transfer. */
  leasesTransferred: number
  /** Replicas of a claimed transfer that were not moved (the giver no longer held them, or the claimant holds or computed another replica of the unit). */
  transfersRefused: number
  /** Volunteers given NATS credentials by POST /v1/volunteers. */
  volunteersSignedUp: number
  /** Sign-ups refused: malformed, a bad signature or proof of work, an unknown challenge, or over the rate limit. */
  signupsRefused: number
  /**
   * Verified requests whose reply subject was not the signer's own inbox (and unverified ones whose
   * reply subject was not an inbox): nothing was sent to them.
   */
  repliesRefused: number
  /**
   * `module.get` and `chunk.get` refused: replayed, or for data no lease the requester holds needs.
   * Also counted in `malformed`.
   */
  dataRequestsRefused: number
  /** Data requests refused because the requester's egress budget was spent (told when to retry). */
  egressRefused: number
  /** Identities caught: a result disagreed with an accepted one (a failed spot check among them). */
  identitiesCaught: number
  /** Units accepted on one trusted identity's result alone (adaptive replication). */
  unitsAcceptedAlone: number
  /** Lone results of trusted identities drawn for a spot check (their held replicas went out). */
  spotChecks: number
  /** Requests of caught identities refused (work, results). */
  bannedRefused: number
  /** Results of caught identities discarded by backtracking. */
  resultsDiscarded: number
  /** Validated units reopened by backtracking, to be validated again. */
  unitsReopened: number
  /** Jobs whose result was merged again after backtracking. */
  jobsRevised: number
}

export function createCounters(): Counters {
  return {
    malformed: 0,
    busy: 0,
    unitsLeased: 0,
    resultsAccepted: 0,
    resultsDuplicate: 0,
    resultsRejected: 0,
    unitsValidated: 0,
    unitsReissued: 0,
    unitsFailed: 0,
    leasesExpired: 0,
    leasesReleased: 0,
    workRequestsLimited: 0,
    emptyGrants: 0,
    wakeUpsSent: 0,
    rewakesSent: 0,
    leaseCapReached: 0,
    renewalsRefused: 0,
    jobsCompleted: 0,
    httpErrors: 0,
    modulesRefused: 0,
    jobsFailed: 0,
    chunksServed: 0,
    chunkBytesServed: 0,
    modulesServed: 0,
    moduleBytesServed: 0,
    leasesTransferred: 0,
    transfersRefused: 0,
    volunteersSignedUp: 0,
    signupsRefused: 0,
    repliesRefused: 0,
    dataRequestsRefused: 0,
    egressRefused: 0,
    identitiesCaught: 0,
    unitsAcceptedAlone: 0,
    spotChecks: 0,
    bannedRefused: 0,
    resultsDiscarded: 0,
    unitsReopened: 0,
    jobsRevised: 0,
  }
}
