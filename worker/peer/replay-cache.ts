// The peer messages seen lately, by sender and nonce, so a message recorded and sent again (by
// anyone: it carries its signer's signature, not the sender's) is refused instead of acted upon.
// A message is remembered until its timestamp leaves the clock window, after which the clock check
// refuses it anyway. The cache is bounded: when it is full the entries that leave the window first
// are dropped, and from then on a message no newer than the newest dropped one is refused as
// possibly replayed (the floor), so an eviction never lets an old message through. No `node:`
// imports: browsers run this too.
import { ProtocolError } from '../../shared/index.js'

/** A message this peer has seen before (or cannot tell apart from one it dropped). */
export class ReplayError extends ProtocolError {
  override name = 'ReplayError'
}

export interface ReplayCacheInit {
  /** Messages remembered at most. */
  maxEntries: number
  /** How long past its timestamp a message stays acceptable (the clock window). */
  windowMs: number
}

export interface ReplayCache {
  /** Remembers (sender, nonce); throws ReplayError when it was seen, or is older than the floor. */
  admit(sender: string, nonce: string, at: number, now: number): void
  readonly size: number
}

export function createReplayCache(init: ReplayCacheInit): ReplayCache {
  const { maxEntries, windowMs } = init
  /** key -> the message's timestamp; kept in arrival order. */
  const seen = new Map<string, number>()
  let floor = -Infinity
  let lastSweep = 0

  /** Drop entries whose timestamp left the window (clock checks refuse them now). */
  const sweep = (now: number): void => {
    for (const [key, at] of seen) if (at < now - windowMs) seen.delete(key)
    lastSweep = now
  }

  /** Full: drop the oldest timestamps first, and refuse anything no newer from now on. */
  const evict = (): void => {
    const byAge = [...seen].sort((a, b) => a[1] - b[1])
    const drop = byAge.slice(0, Math.max(1, Math.floor(maxEntries / 8)))
    for (const [key, at] of drop) {
      seen.delete(key)
      floor = Math.max(floor, at)
    }
  }

  return {
    admit(sender, nonce, at, now) {
      const key = `${sender} ${nonce}`
      if (seen.has(key)) throw new ReplayError(`message ${nonce} from ${sender} was seen before`)
      if (at <= floor) throw new ReplayError('message is older than what the replay cache still remembers')
      if (now - lastSweep > windowMs / 10 || seen.size >= maxEntries) sweep(now)
      if (seen.size >= maxEntries) evict()
      if (at <= floor) throw new ReplayError('message is older than what the replay cache still remembers')
      seen.set(key, at)
    },
    get size() {
      return seen.size
    },
  }
}
