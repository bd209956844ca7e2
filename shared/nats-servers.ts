// A NATS address as operators write it: one URL, or several separated by commas (the nodes of a
// NATS cluster, or leaf nodes), for the client's `servers` list. The client also learns the other
// nodes of a cluster from the node it reaches, and reconnects to any of them when its node goes.
import { ConfigError } from './errors.js'

/** The server URLs in `urls` ("nats://a:4222,nats://b:4222"), in order, blanks dropped. */
export function natsServers(urls: string): string[] {
  const list = urls
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u !== '')
  if (list.length === 0) throw new ConfigError('no NATS server URL given')
  for (const u of list) {
    if (!/^(nats|tls|ws|wss):\/\/[^\s,]+$/.test(u) && !/^[^\s:/,]+:\d+$/.test(u)) {
      throw new ConfigError(`not a NATS server URL: "${u}" (nats://host:port, several separated by commas)`)
    }
  }
  return list
}
