// What the coordinator tells the contribute page (GET /contribute/config.json): where the NATS
// WebSocket listener is, the subject prefix, and which coordinator keys sign units. Defined once,
// produced by coordinator/http/contribute.ts and parsed by the page.
import { ProtocolError } from './errors.js'
import { PEER_ID_PATTERN } from './protocol.js'
import { expectRecord, stringField, stringList } from './schema.js'

export interface ContributeConfig {
  /** Full URL of the NATS WebSocket listener, `ws://host:port` or `wss://host:port`. */
  natsWsUrl: string
  /** NATS subject prefix of the deployment (`cohort`). */
  subjectPrefix: string
  /** Coordinator public keys (base64url) whose signed units the page runs. */
  trust: string[]
}

/** A `ws:` or `wss:` URL with a host; throws ProtocolError naming `field` otherwise. */
export function checkWsUrl(value: string, field = 'natsWsUrl'): string {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new ProtocolError(`${field} must be a full URL such as ws://127.0.0.1:8443, got "${value}"`)
  }
  if ((url.protocol !== 'ws:' && url.protocol !== 'wss:') || url.host === '') {
    throw new ProtocolError(`${field} must be a ws:// or wss:// URL with a host, got "${value}"`)
  }
  return value
}

export function parseContributeConfig(value: unknown): ContributeConfig {
  const r = expectRecord(value, 'contribute config')
  const trust = stringList(r, 'trust', 16, 43, PEER_ID_PATTERN)
  if (trust.length === 0) throw new ProtocolError('trust must name at least one coordinator key')
  return {
    natsWsUrl: checkWsUrl(stringField(r, 'natsWsUrl', 2048)),
    subjectPrefix: stringField(r, 'subjectPrefix', 64, /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/),
    trust,
  }
}
