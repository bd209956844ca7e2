// Discovery traffic of the peer overlay at N peers: what each peer receives per second only to learn
// who is out there (announcements). A few peers run the real overlay (createPeerOverlay, each with
// its own identity, sign-up and NATS connection) and are measured on their connections (payload
// bytes in); the other N - few are announcers that send the very messages an overlay sends
// (`sealAnnouncement`, each signed by an identity of its own, at the overlay's interval, phases
// spread), each on its own shard, without listening, so that 1,000 peers fit on this machine: what a
// listener receives does not depend on whether the other senders listen too. A volunteer may announce
// on its own shard only, so the announcers' one connection logs in as the deployment's coordinators
// do (a load generator, not a volunteer). The listeners first settle on the region of shards they
// listen to (a few announce intervals), then are measured.
import { connect } from '@nats-io/transport-node'
import { jwtAuthenticator, type NatsConnection } from '@nats-io/nats-core'
import { builtinJobTypes } from '../jobs/index.js'
import {
  announceSubject,
  generateIdentity,
  subjectsFor,
  type Identity,
  type Subjects,
} from '../shared/index.js'
import { createPeerOverlay, sealAnnouncement, type PeerOverlay, type PeerState } from '../worker/index.js'
import { benchLogger } from './log.js'
import { volunteerConnection, type NatsLogin } from './nats-login.js'
import { now, sleep } from './stats.js'

export interface OverlayTrafficOptions {
  natsUrl: string
  /** The coordinator the measured peers sign up with; none: they connect without credentials. */
  coordinatorUrl: string | undefined
  subjectPrefix: string
  peers: number
  /** Peers running the real overlay, measured; the rest only announce. */
  listeners: number
  /** Measured span, after the listeners settled on their regions. */
  measureMs: number
  /** How the announcers' connection logs in (the coordinators' login); none: anonymously. */
  announcerLogin: NatsLogin | undefined
}

export interface OverlayTraffic {
  peers: number
  listeners: number
  /** Payload bytes each listener received per second, mean over the listeners. */
  bytesPerPeerPerSecond: number
  /** Messages each listener received per second. */
  messagesPerPeerPerSecond: number
  /** Size of one announcement on the wire (payload bytes). */
  announcementBytes: number
  /** Peers the listeners knew at the end, fewest and most (a sampled region, not the whole overlay). */
  knownAtLeast: number
  knownAtMost: number
  /** Overlay sizes the listeners estimated, lowest and highest. */
  estimates: [number, number]
}

/** The overlay's default interval between announcements (worker/peer/overlay.ts). */
const ANNOUNCE_MS = 2_000
/** Intervals the listeners take to settle on their region: a few halvings, then one re-evaluation. */
const SETTLE_INTERVALS = 5

/** What an idle daemon with two threads announces (no content held). */
const STATE: PeerState = {
  threads: 2,
  running: 0,
  buffered: 0,
  free: 2,
  accepts: [...builtinJobTypes.keys()],
  has: [],
}

interface Listener {
  nats: NatsConnection
  overlay: PeerOverlay
}

async function startListener(opts: OverlayTrafficOptions, i: number): Promise<Listener> {
  const identity = await generateIdentity(true)
  const nats = await volunteerConnection(opts.natsUrl, opts.coordinatorUrl, identity, `bench-overlay-${i}`)
  const overlay = createPeerOverlay({
    nats,
    identity,
    subjects: subjectsFor(opts.subjectPrefix),
    log: benchLogger('overlay'),
    state: () => STATE,
    announceMs: ANNOUNCE_MS,
    // Room for every peer of the largest run: the table's bound is not what is measured.
    maxPeers: Math.max(opts.peers, 256),
  })
  await overlay.start()
  return { nats, overlay }
}

/** Announcers on one connection, each on its own timer, phases spread over one interval. */
function startAnnouncers(nats: NatsConnection, identities: Identity[], subjects: Subjects): () => void {
  const timers: ReturnType<typeof setTimeout>[] = []
  let stopped = false
  identities.forEach((identity, k) => {
    const tick = (): void => {
      if (stopped || nats.isClosed()) return
      void sealAnnouncement(identity, STATE).then((bytes) => {
        if (!stopped && !nats.isClosed()) nats.publish(announceSubject(subjects, identity.id), bytes)
      })
      timers[k] = setTimeout(tick, ANNOUNCE_MS)
    }
    timers[k] = setTimeout(tick, (ANNOUNCE_MS * k) / identities.length)
  })
  return () => {
    stopped = true
    for (const t of timers) clearTimeout(t)
  }
}

const inStats = (ls: Listener[]): { bytes: number; msgs: number } =>
  ls.reduce(
    (sum, l) => {
      const s = l.nats.stats()
      return { bytes: sum.bytes + s.inBytes, msgs: sum.msgs + s.inMsgs }
    },
    { bytes: 0, msgs: 0 },
  )

export async function measureOverlayTraffic(opts: OverlayTrafficOptions): Promise<OverlayTraffic> {
  const listenersWanted = Math.min(opts.listeners, opts.peers)
  const listeners: Listener[] = []
  let announcerNats: NatsConnection | undefined
  let stopAnnouncers = (): void => {}
  try {
    for (let i = 0; i < listenersWanted; i++) listeners.push(await startListener(opts, i))
    const others = await Promise.all(
      Array.from({ length: opts.peers - listenersWanted }, () => generateIdentity(true)),
    )
    if (others.length > 0) {
      const login = opts.announcerLogin
      announcerNats = await connect({
        servers: opts.natsUrl,
        name: 'bench-announcers',
        ...(login === undefined
          ? {}
          : 'user' in login
            ? { user: login.user, pass: login.pass }
            : { authenticator: jwtAuthenticator(login.jwt, new TextEncoder().encode(login.seed)) }),
      })
      stopAnnouncers = startAnnouncers(announcerNats, others, subjectsFor(opts.subjectPrefix))
    }
    await sleep(SETTLE_INTERVALS * ANNOUNCE_MS + 500)
    const before = inStats(listeners)
    const from = now()
    await sleep(opts.measureMs)
    const after = inStats(listeners)
    // The span as it was: on a loaded machine a sleep overshoots.
    const seconds = (now() - from) / 1000
    const n = listeners.length
    const announcementBytes = (await sealAnnouncement(await generateIdentity(true), STATE)).length
    return {
      peers: opts.peers,
      listeners: n,
      bytesPerPeerPerSecond: (after.bytes - before.bytes) / n / seconds,
      messagesPerPeerPerSecond: (after.msgs - before.msgs) / n / seconds,
      announcementBytes,
      knownAtLeast: Math.min(...listeners.map((l) => l.overlay.peers().length)),
      knownAtMost: Math.max(...listeners.map((l) => l.overlay.peers().length)),
      estimates: [
        Math.min(...listeners.map((l) => l.overlay.stats.sizeEstimate)),
        Math.max(...listeners.map((l) => l.overlay.stats.sizeEstimate)),
      ],
    }
  } finally {
    stopAnnouncers()
    await Promise.allSettled(listeners.map((l) => l.overlay.stop()))
    await Promise.allSettled(
      [...listeners.map((l) => l.nats), ...(announcerNats === undefined ? [] : [announcerNats])].map((nc) =>
        nc.drain().catch(() => nc.close()),
      ),
    )
  }
}
