// The region sampler alone (pure logic, simulated overlays of up to 100,000 peers): each peer settles
// on a region of about `target` peers whatever the overlay's size, what it hears per interval then
// stays flat, and what it hears while settling grows with the logarithm of the size.
import test from 'ava'
import { PEER_LIMITS } from '../shared/index.js'
import { createRegionSampler } from '../worker/peer/sampler.js'

/** A deterministic generator of numbers in [0, 1) (mulberry32). */
function seeded(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

interface Run {
  /** Announcements heard per interval once settled (mean over the last intervals). */
  settled: number
  /** Announcements heard over the first 10 intervals (joining, settling). */
  joining: number
  depth: number
  estimate: number
}

/** One peer joining an overlay of `n` peers that announce once per interval, for `intervals` intervals. */
function simulate(n: number, intervals: number, seed: number): Run {
  const random = seeded(seed)
  const target = PEER_LIMITS.neighbours
  const shards = Array.from({ length: n }, () =>
    Array.from({ length: PEER_LIMITS.shardBits }, () => (random() < 0.5 ? '0' : '1')).join(''),
  )
  const sampler = createRegionSampler({ target, maxDepth: PEER_LIMITS.shardBits, random })
  const perInterval: number[] = []
  for (let k = 0; k < intervals; k++) {
    let heard = 0
    // The others announce in an order of their own each interval.
    const offset = Math.floor(random() * n)
    for (let j = 0; j < n; j++) {
      const i = (j + offset) % n
      if (!sampler.contains(shards[i] as string)) continue
      heard++
      sampler.heard(`peer-${i}`)
    }
    sampler.tick()
    perInterval.push(heard)
  }
  const tail = perInterval.slice(-12)
  return {
    settled: tail.reduce((a, b) => a + b, 0) / tail.length,
    joining: perInterval.slice(0, 10).reduce((a, b) => a + b, 0),
    depth: sampler.prefix.length,
    estimate: sampler.estimate,
  }
}

test('sampler - what a peer hears per interval stays about flat from 100 to 100,000 peers, and joining costs O(log N)', (t) => {
  const target = PEER_LIMITS.neighbours
  const sizes = [10, 100, 1_000, 10_000, 100_000]
  const runs = sizes.map((n) => {
    // The mean over a few peers (seeds) of one overlay size.
    const rs = [1, 2, 3, 4].map((seed) => simulate(n, 40, seed * 7919 + n))
    const mean = (f: (r: Run) => number): number => rs.reduce((a, r) => a + f(r), 0) / rs.length
    return {
      n,
      settled: mean((r) => r.settled),
      joining: mean((r) => r.joining),
      estimate: mean((r) => r.estimate),
    }
  })
  for (const r of runs)
    t.log(
      `${r.n} peers: ${r.settled.toFixed(1)} heard per interval settled, ${r.joining.toFixed(0)} over the ` +
        `first 10 intervals, estimate ${r.estimate.toFixed(0)}`,
    )
  const [at10, at100, at1k, at10k, at100k] = runs as [
    (typeof runs)[0],
    (typeof runs)[0],
    (typeof runs)[0],
    (typeof runs)[0],
    (typeof runs)[0],
  ]
  t.is(at10.settled, 10, 'a small overlay is heard whole')
  for (const r of [at100, at1k, at10k, at100k]) {
    t.true(r.settled <= 2 * target && r.settled >= target / 4, `${r.n}: ${r.settled}`)
    t.true(r.estimate >= r.n / 3 && r.estimate <= 3 * r.n, `${r.n}: estimated ${r.estimate}`)
  }
  t.true(at1k.settled <= 2 * at100.settled, 'the goal: 1,000 peers cost at most twice 100')
  t.true(at100k.settled <= 2 * at100.settled)
  // Joining: about 2 × target per halving, and halvings grow with log2(N / target), not with N.
  t.true(at100k.joining <= 10 * at1k.joining, `${at100k.joining} vs ${at1k.joining}`)
  t.true(at100k.joining <= 2 * target * (Math.log2(100_000 / target) + 1) + 10 * 2 * target)
})
