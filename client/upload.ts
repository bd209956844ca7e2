// Upload bodies with progress: the bytes go out as a stream counted on the way, so `onProgress`
// follows what was sent. Streaming a request body needs fetch with `duplex: 'half'` (Node; browsers
// over HTTP/2); `stream: false` sends the body in one piece (progress then only at the end).

export type UploadBody = Uint8Array | ArrayBuffer | Blob | ReadableStream<Uint8Array>

export interface UploadOptions {
  /** The body's size in bytes, when the body is a stream (for `onProgress`'s total). */
  size?: number
  /** Called as bytes go out: bytes sent so far and the total, when known. */
  onProgress?: (sent: number, total: number | undefined) => void
  /** Send the body as a stream (default: true when it is one or `onProgress` is given). */
  stream?: boolean
  signal?: AbortSignal
  /** The whole upload's timeout. Default 3600000 ms. */
  timeoutMs?: number
}

/** Slices of a byte array sent as a stream. */
const SLICE = 64 * 1024

function sizeOf(body: UploadBody): number | undefined {
  if (body instanceof Uint8Array || body instanceof ArrayBuffer) return body.byteLength
  if (typeof Blob !== 'undefined' && body instanceof Blob) return body.size
  return undefined
}

function toStream(body: UploadBody): ReadableStream<Uint8Array> {
  if (body instanceof ReadableStream) return body
  if (typeof Blob !== 'undefined' && body instanceof Blob) return body.stream()
  const bytes = body instanceof ArrayBuffer ? new Uint8Array(body) : (body as Uint8Array)
  let at = 0
  return new ReadableStream<Uint8Array>({
    pull(ctl) {
      if (at >= bytes.byteLength) return ctl.close()
      ctl.enqueue(bytes.subarray(at, Math.min(bytes.byteLength, at + SLICE)))
      at += SLICE
    },
  })
}

/** The body to send, whether it streams, and a call for the end (the last progress report). */
export function uploadBody(
  body: UploadBody,
  opts: UploadOptions,
): { body: BodyInit; stream: boolean; finished: () => void } {
  const total = opts.size ?? sizeOf(body)
  const onProgress = opts.onProgress
  const stream = opts.stream ?? (body instanceof ReadableStream || onProgress !== undefined)
  let sent = 0
  const finished = (): void => onProgress?.(total ?? sent, total ?? sent)
  if (!stream) {
    if (body instanceof ReadableStream) throw new TypeError('a stream body cannot be sent with stream: false')
    return { body: body as BodyInit, stream: false, finished }
  }
  const counted = toStream(body).pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, ctl) {
        sent += chunk.byteLength
        onProgress?.(sent, total)
        ctl.enqueue(chunk)
      },
    }),
  )
  return { body: counted, stream: true, finished }
}
