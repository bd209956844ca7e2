// Peer-to-peer content: what one coordinator sends when several workers need the same large input,
// and how long it takes until they all hold it. One dataset is uploaded through the HTTP API; then,
// in each repetition, the same number of fresh peers resolve it all at once, first as plain
// client-server (no overlay: every chunk comes from the coordinator), then peer to peer (overlays
// started and meshed: the peers split what no one has yet and take the rest from each other). The
// coordinator's own counters give its egress; every peer's copy is checked against the dataset.
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { Worker } from 'node:worker_threads'
import type { Coordinator } from '../coordinator/index.js'
import { knnDataset } from '../jobs/index.js'
import { connect } from '../client/index.js'
import { generateIdentity, type ContentRef } from '../shared/index.js'
import { benchCoordinator, type Endpoints } from './cluster.js'
import { progress } from './log.js'
import { BENCH_API_TUNING } from './api-access.js'
import { BENCH_SIGNUP_TUNING } from './nats-login.js'
import { processCpuMs, startCpuAccount, type CpuShares } from './machine.js'
import type { P2pHostInit, P2pMode, P2pReply, P2pRequest } from './p2p-protocol.js'
import { median, now } from './stats.js'
import { fileBody } from '../scripts/file-body.js'

export interface P2pOptions {
  endpoints: Endpoints
  /** Size of the shared input in bytes (a multiple of 64). */
  bytes: number
  peers: number
  /**
   * Threads the peers are spread over (each an event loop of its own, as separate processes would
   * have). Default: one per peer.
   */
  threads?: number
  /** Repetitions; each runs both modes with fresh peers. The median is reported. */
  repeats: number
  /** The p2p peers' announce interval. Default 250 ms. */
  announceMs?: number
  /** Pids of the private Redis and NATS, to count their CPU time too. */
  servicePids?: () => number[]
}

/** One mode, one repetition: `peers` fresh peers resolving the content at once. */
export interface P2pModeRun {
  mode: P2pMode
  /** The coordinator's `chunk.get` replies during the resolve: payload bytes, and chunks + manifests. */
  coordinatorBytes: number
  coordinatorChunks: number
  /** From the start of the resolve until every peer held the whole content, and until the first did. */
  allMs: number
  firstMs: number
  /** The same for each peer. */
  peerMs: number[]
  /** Summed over the peers' fetchers: bytes taken from other peers and from the coordinator. */
  bytesFromPeers: number
  bytesFromCoordinator: number
  corruptChunks: number
  failedRequests: number
  /** p2p: from the peers' start until each had heard of every other; null in client-server mode. */
  meshMs: number | null
  coordinatorEventLoopUtilization: number
  /** Mean over the peers' threads. */
  peersEventLoopUtilization: number
  /** CPU time during the resolve: this process (coordinator and peers, all threads), Redis + NATS. */
  cpuMs: number
  servicesCpuMs: number
  /** Shares of all cores' time during the resolve (`others` above 0.1: the figures are noisy). */
  cpu: CpuShares
}

export interface P2pRepetition {
  clientServer: P2pModeRun
  p2p: P2pModeRun
}

export interface P2pResult {
  bytes: number
  peers: number
  threads: number
  chunks: number
  manifestBytes: number
  root: string
  announceMs: number
  /** POST /v1/datasets of the input, ms. */
  uploadMs: number
  /** peers × bytes: the least plain client-server sends. */
  clientServerMinimumBytes: number
  runs: P2pRepetition[]
  /** Medians over the repetitions; ratios are p2p / client-server of those medians. */
  coordinatorBytes: { clientServer: number; p2p: number; ratio: number }
  allMs: { clientServer: number; p2p: number; ratio: number }
  firstMs: { clientServer: number; p2p: number; ratio: number }
  bytesFromPeers: number
}

const DIM = 64
const SEED = 1
const MESH_TIMEOUT_MS = 30_000
const STOP_TIMEOUT_MS = 30_000

// ---- the peers' threads ----

type ReplyOf<T extends P2pReply['type']> = Extract<P2pReply, { type: T }>

interface PeerHost {
  ask<T extends P2pReply['type']>(req: P2pRequest, expect: T): Promise<ReplyOf<T>>
  stop(): Promise<void>
}

async function startPeerHost(init: P2pHostInit): Promise<PeerHost> {
  const thread = new Worker(new URL('./p2p-host.js', import.meta.url), { workerData: init })
  /** The thread's next message, which must be of type `expect`. Requests go one at a time. */
  const next = <T extends P2pReply['type']>(expect: T): Promise<ReplyOf<T>> =>
    new Promise((resolve, reject) => {
      const detach = (): void => {
        thread.off('message', onMessage).off('error', onError).off('exit', onExit)
      }
      const onMessage = (r: P2pReply): void => {
        detach()
        if (r.type === expect) resolve(r as ReplyOf<T>)
        else
          reject(new Error(r.type === 'failed' ? r.message : `peer host answered ${r.type}, not ${expect}`))
      }
      const onError = (err: Error): void => {
        detach()
        reject(err)
      }
      const onExit = (code: number): void => {
        detach()
        reject(new Error(`peer host thread exited (code ${code})`))
      }
      thread.on('message', onMessage).on('error', onError).on('exit', onExit)
    })
  try {
    await next('ready')
  } catch (err) {
    await thread.terminate()
    throw err
  }
  return {
    ask(req, expect) {
      const reply = next(expect)
      thread.postMessage(req)
      return reply
    },
    async stop() {
      const stopped = next('stopped').catch(() => undefined)
      thread.postMessage({ type: 'stop' } satisfies P2pRequest)
      let timer: ReturnType<typeof setTimeout> | undefined
      await Promise.race([stopped, new Promise((resolve) => (timer = setTimeout(resolve, STOP_TIMEOUT_MS)))])
      clearTimeout(timer)
      await thread.terminate()
    },
  }
}

// ---- one mode ----

interface ModeContext {
  coordinator: Coordinator
  endpoints: Endpoints
  subjectPrefix: string
  content: ContentRef
  /** SHA-256 of the whole input. */
  digest: string
  peers: number
  threads: number
  announceMs: number
  servicePids: () => number[]
}

/** `peers` split over `threads` as evenly as they go. */
function spread(peers: number, threads: number): number[] {
  return Array.from(
    { length: threads },
    (_, t) => Math.floor(((t + 1) * peers) / threads) - Math.floor((t * peers) / threads),
  )
}

async function runMode(ctx: ModeContext, mode: P2pMode): Promise<P2pModeRun> {
  const hosts: PeerHost[] = []
  // Coordinators serve content only to a worker holding a lease whose unit reads it: one unit per
  // peer of a job reading the content; each peer takes one (and never runs it).
  const api = connect({ url: ctx.coordinator.url })
  const job = await api.submit({
    type: 'knn',
    params: {
      dataset: ctx.content.root,
      dim: DIM,
      k: 1,
      queries: { count: ctx.peers, seed: SEED },
      queriesPerUnit: 1,
    },
    redundancy: { quorum: 1 },
  })
  const planned = now()
  while ((await ctx.coordinator.store.getJob(job.id))?.planned !== true) {
    if (now() - planned > MESH_TIMEOUT_MS) throw new Error(`job ${job.id} was not planned`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  /** Ask every thread at once. */
  const askAll = <T extends P2pReply['type']>(req: P2pRequest, expect: T): Promise<ReplyOf<T>[]> =>
    Promise.all(hosts.map((h) => h.ask(req, expect)))
  try {
    let first = 0
    for (const peers of spread(ctx.peers, ctx.threads)) {
      hosts.push(
        await startPeerHost({
          natsUrl: ctx.endpoints.natsUrl,
          ...(ctx.endpoints.natsAccountSeed === undefined ? {} : { coordinatorUrl: ctx.coordinator.url }),
          subjectPrefix: ctx.subjectPrefix,
          mode,
          peers,
          swarm: ctx.peers,
          first,
          announceMs: ctx.announceMs,
          content: ctx.content,
        }),
      )
      first += peers
    }
    const meshMs =
      mode === 'p2p'
        ? Math.max(...(await askAll({ type: 'mesh', timeoutMs: MESH_TIMEOUT_MS }, 'meshed')).map((m) => m.ms))
        : null
    const { counters } = ctx.coordinator
    const bytes0 = counters.chunkBytesServed
    const chunks0 = counters.chunksServed
    const servicesMs = (): number => ctx.servicePids().reduce((n, pid) => n + (processCpuMs(pid) ?? 0), 0)
    const account = startCpuAccount(ctx.servicePids)
    const services0 = servicesMs()
    const cpu0 = process.cpuUsage()
    const elu0 = performance.eventLoopUtilization()
    const resolved = await askAll({ type: 'resolve' }, 'resolved')
    const elu = performance.eventLoopUtilization(elu0).utilization
    const cpuUsage = process.cpuUsage(cpu0)
    const servicesCpuMs = servicesMs() - services0
    const cpu = account()
    const coordinatorBytes = counters.chunkBytesServed - bytes0
    const coordinatorChunks = counters.chunksServed - chunks0
    const digests = (await askAll({ type: 'digests' }, 'digests')).flatMap((d) => d.digests)
    const wrong = digests.filter((d) => d !== ctx.digest).length
    if (wrong > 0 || digests.length !== ctx.peers)
      throw new Error(`${mode}: ${wrong} of ${ctx.peers} peers hold something else than the input`)
    // The threads' clocks agree (stats.now); times count from the earliest start.
    const startedAt = Math.min(...resolved.map((r) => r.startedAt))
    const peerMs = resolved.flatMap((r) => r.doneAt.map((t) => t - startedAt))
    const fetchers = resolved.flatMap((r) => r.fetchers)
    const sum = (pick: (s: (typeof fetchers)[number]) => number): number =>
      fetchers.reduce((n, s) => n + pick(s), 0)
    return {
      mode,
      coordinatorBytes,
      coordinatorChunks,
      allMs: Math.max(...peerMs),
      firstMs: Math.min(...peerMs),
      peerMs,
      bytesFromPeers: sum((s) => s.bytesFromPeers),
      bytesFromCoordinator: sum((s) => s.bytesFromCoordinator),
      corruptChunks: sum((s) => s.corruptChunks),
      failedRequests: sum((s) => s.failedRequests),
      meshMs,
      coordinatorEventLoopUtilization: elu,
      peersEventLoopUtilization: resolved.reduce((n, r) => n + r.eventLoopUtilization, 0) / resolved.length,
      cpuMs: (cpuUsage.user + cpuUsage.system) / 1000,
      servicesCpuMs,
      cpu,
    }
  } finally {
    await Promise.all(hosts.map((h) => h.stop()))
    await api.cancel(job.id).catch(() => undefined)
  }
}

// ---- the section ----

/** Upload `bytes` through POST /v1/datasets (from a temporary file, as `cohort upload` does). */
async function upload(coordinator: Coordinator, bytes: Uint8Array): Promise<{ root: string; ms: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'cohort-bench-p2p-'))
  try {
    const file = join(dir, 'input.bin')
    await writeFile(file, bytes)
    const started = now()
    const view = await connect({ url: coordinator.url }).uploadDataset((await fileBody(file)).stream)
    if (view.size !== bytes.length)
      throw new Error(`uploaded ${bytes.length} bytes, the coordinator holds ${view.size}`)
    return { root: view.root, ms: now() - started }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

const mib = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MiB`

export async function runP2p(opts: P2pOptions): Promise<P2pResult> {
  if (opts.bytes % DIM !== 0) throw new Error(`the input size must be a multiple of ${DIM} bytes`)
  const { endpoints } = opts
  const announceMs = opts.announceMs ?? 250
  const threads = opts.threads ?? opts.peers
  const subjectPrefix = `bench-p2p-${process.pid}-${randomBytes(4).toString('hex')}`
  const coordinator = benchCoordinator(
    endpoints,
    // Leases outlast the slowest resolve: the peers hold theirs while they fetch, and never renew.
    {
      redisPrefix: `${subjectPrefix}:`,
      subjectPrefix,
      leaseMs: 3600_000,
      ...BENCH_SIGNUP_TUNING,
      ...BENCH_API_TUNING,
    },
    await generateIdentity(true),
  )
  await coordinator.start()
  try {
    let input: Uint8Array | undefined = knnDataset(opts.bytes / DIM, DIM, SEED)
    const digest = createHash('sha256').update(input).digest('hex')
    const { root, ms: uploadMs } = await upload(coordinator, input)
    input = undefined // the peers' copies are checked against the digest; 64 MiB less to keep
    const manifest = await coordinator.datasets.manifest(root)
    const info = await coordinator.datasets.info(root)
    if (manifest === undefined || info === undefined) throw new Error(`dataset ${root} was not stored`)
    progress(`p2p: uploaded ${mib(opts.bytes)} (${info.chunks} chunks) in ${uploadMs.toFixed(0)} ms`)

    const ctx: ModeContext = {
      coordinator,
      endpoints,
      subjectPrefix,
      content: { root, size: opts.bytes },
      digest,
      peers: opts.peers,
      threads,
      announceMs,
      servicePids: opts.servicePids ?? (() => []),
    }
    const runs: P2pRepetition[] = []
    for (let r = 0; r < opts.repeats; r++) {
      const clientServer = await runMode(ctx, 'client-server')
      const p2p = await runMode(ctx, 'p2p')
      runs.push({ clientServer, p2p })
      progress(
        `p2p run ${r + 1}: coordinator sent ${mib(clientServer.coordinatorBytes)} client-server, ` +
          `${mib(p2p.coordinatorBytes)} peer to peer (peers exchanged ${mib(p2p.bytesFromPeers)}); ` +
          `all ${opts.peers} held it after ${clientServer.allMs.toFixed(0)} ms vs ${p2p.allMs.toFixed(0)} ms`,
      )
    }
    const pair = (pick: (m: P2pModeRun) => number): { clientServer: number; p2p: number; ratio: number } => {
      const clientServer = median(runs.map((r) => pick(r.clientServer)))
      const p2p = median(runs.map((r) => pick(r.p2p)))
      return { clientServer, p2p, ratio: p2p / clientServer }
    }
    return {
      bytes: opts.bytes,
      peers: opts.peers,
      threads,
      chunks: info.chunks,
      manifestBytes: manifest.length,
      root,
      announceMs,
      uploadMs,
      clientServerMinimumBytes: opts.peers * opts.bytes,
      runs,
      coordinatorBytes: pair((m) => m.coordinatorBytes),
      allMs: pair((m) => m.allMs),
      firstMs: pair((m) => m.firstMs),
      bytesFromPeers: median(runs.map((r) => r.p2p.bytesFromPeers)),
    }
  } finally {
    await coordinator.stop()
  }
}
