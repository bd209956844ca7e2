// Reading a request body (JSON or raw bytes) with a hard size limit, before anything is parsed.
import type { Context } from 'koa'
import { HttpError } from './http-error.js'

/** The raw body, refused with 415 unless its Content-Type is `type`, and with 413 past `maxBytes`. */
export async function readRawBody(ctx: Context, type: string, maxBytes: number): Promise<Uint8Array> {
  const given = (ctx.request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase()
  if (given !== type) {
    throw new HttpError(415, 'unsupported-media-type', `send the body with Content-Type: ${type}`)
  }
  return await readBytes(ctx, maxBytes)
}

async function readBytes(ctx: Context, maxBytes: number): Promise<Buffer> {
  const declared = Number(ctx.request.headers['content-length'] ?? NaN)
  if (Number.isFinite(declared) && declared > maxBytes) {
    throw new HttpError(
      413,
      'too-large',
      `request body of ${declared} bytes exceeds the limit of ${maxBytes} bytes`,
    )
  }
  const chunks: Buffer[] = []
  let size = 0
  // Leaving the loop must not destroy the request: that resets the socket before the 413 is sent.
  for await (const chunk of ctx.req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > maxBytes) {
      // Discard the rest of the body (never buffered) so the client can read the reply.
      ctx.req.resume()
      throw new HttpError(413, 'too-large', `request body exceeds the limit of ${maxBytes} bytes`)
    }
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}

export async function readJsonBody(ctx: Context, maxBytes: number): Promise<unknown> {
  const type = ctx.request.headers['content-type'] ?? ''
  if (!/^application\/(.+\+)?json\b/i.test(type)) {
    throw new HttpError(
      415,
      'unsupported-media-type',
      'send the body as JSON with Content-Type: application/json',
    )
  }
  const text = (await readBytes(ctx, maxBytes)).toString('utf8')
  if (text.trim() === '')
    throw new HttpError(400, 'malformed-json', 'request body is empty; send a JSON object')
  try {
    return JSON.parse(text) as unknown
  } catch (err) {
    throw new HttpError(400, 'malformed-json', `request body is not valid JSON: ${(err as Error).message}`)
  }
}
