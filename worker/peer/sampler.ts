// Which announcements a peer listens to. Announcements are sharded by the first bits of the sender's
// public key; a peer listens to one region of the shards (the shards whose bits start with a prefix),
// sized so that it holds about `target` peers whatever the size of the overlay: the prefix is one bit
// longer each time the overlay doubles. The size is estimated from what the peer hears: the distinct
// peers heard in its region over a few announce intervals, times the number of regions. A region
// that turns out far too crowded is halved at once (so a peer joining a large overlay hears about
// 2 × target announcements per halving, not the whole overlay); otherwise the depth is re-evaluated,
// and a fresh region drawn at random, every few intervals (gossip by sampling: the neighbours
// change over time). Pure logic, no I/O: the overlay subscribes to what `prefix` names.

export interface RegionSamplerInit {
  /** Peers a region should hold. */
  target: number
  /** Longest prefix (the number of shard bits). */
  maxDepth: number
  /** Own announce intervals between re-evaluations. Default 3. */
  evaluateEvery?: number
  /** Random numbers in [0, 1). Default Math.random. */
  random?: () => number
}

export interface RegionSampler {
  /** The region listened to: shards whose bits start with this ('' = every shard). */
  readonly prefix: string
  /** Overlay size estimated at the last re-evaluation (0 before the first). */
  readonly estimate: number
  /** Whether a shard lies in the region. */
  contains(shard: string): boolean
  /** A verified announcement from a peer of the region; true when the region changed. */
  heard(peerId: string): boolean
  /** One own announce interval passed; true when the region changed. */
  tick(): boolean
}

export function createRegionSampler(init: RegionSamplerInit): RegionSampler {
  const { target, maxDepth } = init
  const every = init.evaluateEvery ?? 3
  const random = init.random ?? Math.random
  if (!(target >= 1) || !(maxDepth >= 0) || !(every >= 2))
    throw new RangeError('target must be at least 1, maxDepth at least 0, evaluateEvery at least 2')
  const bits = (n: number): string => Array.from({ length: n }, () => (random() < 0.5 ? '0' : '1')).join('')
  let prefix = ''
  let estimate = 0
  /** Distinct peers heard in the region since it was chosen (at most 2 × target + 1). */
  let window = new Set<string>()
  let ticks = 0

  const choose = (next: string): boolean => {
    const changed = next !== prefix
    prefix = next
    window = new Set()
    ticks = 0
    return changed
  }

  return {
    get prefix() {
      return prefix
    },
    get estimate() {
      return estimate
    },
    contains(shard) {
      return shard.startsWith(prefix)
    },
    heard(peerId) {
      if (window.size > 2 * target) return false
      window.add(peerId)
      // Far too crowded: halve the region now, without waiting for the next evaluation.
      if (window.size > 2 * target && prefix.length < maxDepth) return choose(prefix + bits(1))
      return false
    },
    tick() {
      if (++ticks < every) return false
      const depth = prefix.length
      // A region heard empty counts as one peer: widen step by step, not straight to every shard
      // (which a large overlay would then flood this peer with).
      estimate = Math.max(window.size, 1) * 2 ** depth
      let next = Math.min(maxDepth, Math.max(0, Math.ceil(Math.log2(estimate / target))))
      // Widen only when the wider region clearly fits (no flapping at the boundary).
      if (next < depth && estimate / 2 ** next > 0.8 * target) next = depth
      return choose(bits(next))
    },
  }
}
