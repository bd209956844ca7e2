// What a coordinator records about a volunteer identity at sign-up, for replica placement
// (docs/security.md, "Replica placement"): its owner and its network, as fields `owner` and `net` of
// the `worker:{id}` hash the lease scripts read (coordinator/store/scripts.ts).
//
// Owner: the identity itself unless the sign-up links it to an owner key. The owner is set once:
// an identity that was never linked may be linked (that only adds constraints to it), but a linked
// identity keeps its owner: a sign-up naming another owner is refused, one naming none keeps it.
// Network: that of the latest sign-up (a machine that moves signs up again when its credentials
// renew); '' for exempt networks. Linked identities are listed in `owner:{o}:ids`, so that a caught
// identity's owner loses its credibility with all its identities (store/trust-scripts.ts).
import type { Redis } from 'ioredis'
import { prefixedScript } from '../store/define-script.js'

// ARGV: prefix, peer id, requested owner ('' for none), network, now.
// Returns {1, owner} when recorded, {0, recorded owner} when the identity is linked to another owner.
const RECORD = `
local k = ARGV[1]..'worker:'..ARGV[2]
local id, want, net, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local cur = redis.call('HGET', k, 'owner')
local owner = cur
if not cur then
  if want ~= '' then owner = want else owner = id end
elseif want ~= '' and want ~= cur then
  if cur ~= id then return { 0, cur } end
  owner = want
end
redis.call('HSET', k, 'owner', owner, 'net', net, 'signedUpAt', now)
if owner ~= id then
  local ok = ARGV[1]..'owner:'..owner
  redis.call('SADD', ok..':ids', id)
  -- An owner caught cheating: its new identities are born caught (no work, no credibility).
  if redis.call('HGET', ok, 'caught') and not redis.call('HGET', k, 'caught') then
    redis.call('HSET', k, 'caught', now, 'caughtAt', now, 'caughtReason', 'its owner was caught cheating')
    redis.call('ZADD', ARGV[1]..'caught', now, id)
  end
end
return { 1, owner }
`

const SCRIPT = prefixedScript(RECORD)

export interface VolunteerAttributes {
  /**
   * Records a sign-up of `peerId` from `network`, linked to `owner` when given: the owner now
   * recorded, or `refused` with the owner it is linked to.
   */
  record(
    peerId: string,
    owner: string | undefined,
    network: string,
    now: number,
  ): Promise<{ ok: true; owner: string } | { ok: false; owner: string }>
}

export function createVolunteerAttributes(init: { redis: Redis; prefix: string }): VolunteerAttributes {
  return {
    async record(peerId, owner, network, now) {
      const [ok, recorded] = (await init.redis.eval(
        SCRIPT.lua,
        SCRIPT.numberOfKeys,
        init.prefix,
        peerId,
        owner ?? '',
        network,
        String(now),
      )) as [number, string]
      return ok === 1 ? { ok: true, owner: recorded } : { ok: false, owner: recorded }
    },
  }
}
