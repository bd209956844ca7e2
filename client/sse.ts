// Reading a text/event-stream body (the WHATWG Server-Sent Events format) with fetch streaming:
// events as they arrive, comments and `retry:` taken note of, lines split on CR, LF or CRLF.

export interface SseMessage {
  /** The event's id ('' when it has none). */
  id: string
  event: string
  data: string
}

export interface SseReader {
  /** The server's reconnection delay, when it sent one. */
  retryMs?: number
  messages(): AsyncGenerator<SseMessage>
}

/** Lines longer than this end the stream with an error (a broken or hostile server). */
const MAX_LINE = 1024 * 1024

/**
 * Parse `body`; `onBytes` is called on every chunk (idle timers). Ends when the body ends, throws
 * when it breaks.
 */
export function readSse(body: ReadableStream<Uint8Array>, onBytes: () => void): SseReader {
  const reader: SseReader = {
    async *messages() {
      const decoder = new TextDecoder()
      let buf = ''
      let id = ''
      let event = ''
      let data: string[] = []
      const stream = body.getReader()
      try {
        for (;;) {
          const { done, value } = await stream.read()
          if (done) return
          onBytes()
          buf += decoder.decode(value, { stream: true })
          for (;;) {
            const m = /\r\n|\r|\n/.exec(buf)
            if (m === null) break
            // A lone CR at the end may be half of a CRLF: wait for the next chunk.
            if (m[0] === '\r' && m.index === buf.length - 1) break
            const line = buf.slice(0, m.index)
            buf = buf.slice(m.index + m[0].length)
            if (line === '') {
              if (data.length > 0)
                yield { id, event: event === '' ? 'message' : event, data: data.join('\n') }
              id = ''
              event = ''
              data = []
              continue
            }
            if (line.startsWith(':')) continue
            const colon = line.indexOf(':')
            const field = colon < 0 ? line : line.slice(0, colon)
            let value = colon < 0 ? '' : line.slice(colon + 1)
            if (value.startsWith(' ')) value = value.slice(1)
            if (field === 'data') data.push(value)
            else if (field === 'event') event = value
            else if (field === 'id' && !value.includes('\0')) id = value
            else if (field === 'retry' && /^\d+$/.test(value)) reader.retryMs = Number(value)
          }
          if (buf.length > MAX_LINE) throw new Error(`event stream line longer than ${MAX_LINE} characters`)
        }
      } finally {
        await stream.cancel().catch(() => {})
      }
    },
  }
  return reader
}
