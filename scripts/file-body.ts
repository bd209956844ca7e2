// A file as an upload body for the client: a web stream read as it is sent, and its size.
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { CohortError } from '../shared/index.js'

export async function fileBody(path: string): Promise<{ stream: ReadableStream<Uint8Array>; size: number }> {
  const st = await stat(path).catch((err: unknown) => {
    throw new CohortError(`cannot read ${path}: ${(err as Error).message}`)
  })
  if (!st.isFile()) throw new CohortError(`${path} is not a file`)
  return { stream: Readable.toWeb(createReadStream(path)) as ReadableStream<Uint8Array>, size: st.size }
}

/** `12.5 of 40.0 MiB (31 %)`. */
export function uploadLine(sent: number, size: number): string {
  const mib = (n: number): string => (n / 1048576).toFixed(1)
  const pct = size === 0 ? 100 : Math.floor((sent * 100) / size)
  return `uploading: ${mib(sent)} of ${mib(size)} MiB (${pct} %)`
}
