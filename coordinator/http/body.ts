// Reading a request body (JSON or raw bytes) with a hard size limit, before anything is parsed.
import type { Context } from 'koa'
import { HttpError } from './http-error.js'

/** The raw body, refused with 415 unless its Content-Type is `type`, and with 413 past `maxBytes`. */
export async function readRawBody(ctx: Context, type: string, maxBytes: number): Promise<Uint8Array> {
  return await readBytes(rawBodyStream(ctx, type, maxBytes))
}

/**
 * The raw body as it arrives, for bodies too large to hold: refused with 415 (at once) unless its
 * Content-Type is `type`, and with 413 as soon as it passes `maxBytes` (declared or counted).
 */
export function rawBodyStream(ctx: Context, type: string, maxBytes: number): AsyncIterable<Buffer> {
  const given = (ctx.request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase()
  if (given !== type) {
    throw new HttpError(415, 'unsupported-media-type', `send the body with Content-Type: ${type}`)
  }
  return limitedBody(ctx, maxBytes)
}

function limitedBody(ctx: Context, maxBytes: number): AsyncIterable<Buffer> {
  const declared = Number(ctx.request.headers['content-length'] ?? NaN)
  if (Number.isFinite(declared) && declared > maxBytes) {
    throw new HttpError(
      413,
      'too-large',
      `request body of ${declared} bytes exceeds the limit of ${maxBytes} bytes`,
    )
  }
  return (async function* () {
    let size = 0
    let ended = false
    try {
      // Leaving the loop must not destroy the request: that resets the socket before the 413 is sent.
      for await (const chunk of ctx.req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
        size += chunk.length
        if (size > maxBytes)
          throw new HttpError(413, 'too-large', `request body exceeds the limit of ${maxBytes} bytes`)
        yield chunk
      }
      ended = true
    } finally {
      // Refused or abandoned half-way: discard the rest of the body (never buffered) so the client
      // can read the reply.
      if (!ended) ctx.req.resume()
    }
  })()
}

async function readBytes(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of body) chunks.push(chunk)
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
  const text = (await readBytes(limitedBody(ctx, maxBytes))).toString('utf8')
  if (text.trim() === '')
    throw new HttpError(400, 'malformed-json', 'request body is empty; send a JSON object')
  try {
    return JSON.parse(text) as unknown
  } catch (err) {
    throw new HttpError(400, 'malformed-json', `request body is not valid JSON: ${(err as Error).message}`)
  }
}
