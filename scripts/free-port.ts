// Free TCP ports: ask the kernel for one by binding port 0 on the loopback address.
import { createServer } from 'node:net'

/** A TCP port on 127.0.0.1 that nothing listens on right now (another process may still take it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.once('error', reject)
    server.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => {
      const address = server.address()
      if (address === null || typeof address === 'string') {
        server.close()
        reject(new Error('free-port: the socket has no TCP address'))
        return
      }
      server.close((err) => (err ? reject(err) : resolve(address.port)))
    })
  })
}

/** `count` distinct free ports. */
export async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>()
  while (ports.size < count) ports.add(await freePort())
  return [...ports]
}
