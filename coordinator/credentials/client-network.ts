// Where a volunteer signs up from: the client address behind trusted proxies, and the network that
// address belongs to for replica placement (docs/security.md, "Replica placement"): its /24 in IPv4,
// its /48 in IPv6, or none for the exempt ranges (loopback and private ones by default, so one
// machine or one LAN can run several workers of a test or a small deployment).
import { BlockList, isIP } from 'node:net'
import { ConfigError } from '../../shared/index.js'

/** Loopback, RFC 1918 private ranges and IPv6 unique local addresses. */
export const DEFAULT_EXEMPT_NETWORKS: readonly string[] = [
  '127.0.0.0/8',
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '::1/128',
  'fc00::/7',
]

/** Most X-Forwarded-For entries looked at (from the right). */
const MAX_FORWARDED_HOPS = 16

/** An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as IPv4; anything else unchanged. */
export function plainAddress(address: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address.trim())
  return mapped?.[1] ?? address.trim()
}

/** Checks a list of CIDR ranges (`a.b.c.d/n`, `x::y/n`, or a bare address); ConfigError names `field`. */
export function parseCidrList(value: unknown, field: string): string[] {
  if (!Array.isArray(value) || value.length > 1000)
    throw new ConfigError(`${field} must be a list of at most 1000 CIDR ranges`)
  return value.map((v, i) => {
    if (typeof v !== 'string') throw new ConfigError(`${field}[${i}] must be a CIDR range string`)
    const [addr = '', bits, extra] = v.split('/')
    const family = isIP(addr)
    const max = family === 4 ? 32 : 128
    const n = bits === undefined ? max : Number(bits)
    if (family === 0 || extra !== undefined || !Number.isInteger(n) || n < 0 || n > max || bits === '')
      throw new ConfigError(`${field}[${i}] must be a CIDR range like 10.0.0.0/8 or fc00::/7, got "${v}"`)
    return `${addr}/${n}`
  })
}

function blockList(cidrs: readonly string[]): BlockList {
  const list = new BlockList()
  for (const c of cidrs) {
    const [addr = '', bits = ''] = c.split('/')
    list.addSubnet(addr, Number(bits), isIP(addr) === 4 ? 'ipv4' : 'ipv6')
  }
  return list
}

function contains(list: BlockList, address: string): boolean {
  const family = isIP(address)
  if (family === 0) return false
  return list.check(address, family === 4 ? 'ipv4' : 'ipv6')
}

/** The eight 16-bit groups of an IPv6 address, as lowercase hex without leading zeros. */
function ipv6Groups(address: string): string[] {
  let text = address.toLowerCase()
  // A trailing dotted quad (::ffff:1.2.3.4 forms other than the mapped one handled above).
  const quad = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text)
  if (quad !== null) {
    const [a, b, c, d] = quad.slice(1).map(Number) as [number, number, number, number]
    text = `${text.slice(0, quad.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
  }
  const [head = '', tail] = text.split('::')
  const left = head === '' ? [] : head.split(':')
  const right = tail === undefined || tail === '' ? [] : tail.split(':')
  const groups =
    tail === undefined
      ? left
      : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right]
  return groups.map((g) => g.replace(/^0+(?=.)/, ''))
}

export interface ClientNetworkRules {
  /**
   * The client's address: the socket's peer, or, when that peer is a trusted proxy, the right-most
   * X-Forwarded-For entry that is not itself a trusted proxy.
   */
  clientAddress(socketAddress: string, forwardedFor: string | undefined): string
  /** The placement network of `address` (`4:a.b.c`, `6:x:y:z`), or '' when it is exempt. */
  networkOf(address: string): string
}

export function createClientNetworkRules(init: {
  trustedProxies: readonly string[]
  exemptNetworks: readonly string[]
}): ClientNetworkRules {
  const proxies = blockList(init.trustedProxies)
  const exempt = blockList(init.exemptNetworks)
  const trusted = (a: string): boolean => init.trustedProxies.length > 0 && contains(proxies, a)
  return {
    clientAddress(socketAddress, forwardedFor) {
      let client = plainAddress(socketAddress)
      if (forwardedFor === undefined || !trusted(client)) return client
      const hops = forwardedFor.split(',').slice(-MAX_FORWARDED_HOPS).reverse()
      for (const hop of hops) {
        const a = plainAddress(hop)
        // A malformed entry ends the walk: the last hop known good (a trusted proxy) is the client.
        if (isIP(a) === 0) return client
        client = a
        if (!trusted(a)) return a
      }
      return client
    },
    networkOf(address) {
      const a = plainAddress(address)
      const family = isIP(a)
      if (family === 0) return `?:${a.slice(0, 64)}`
      if (contains(exempt, a)) return ''
      if (family === 4) return `4:${a.split('.').slice(0, 3).join('.')}`
      return `6:${ipv6Groups(a).slice(0, 3).join(':')}`
    },
  }
}
