// Test helper: scrape a coordinator's /metrics and parse it with a Prometheus text-format parser
// (parse-prometheus-text-format, which throws on lines it cannot read), then read samples by name
// and labels.
import parsePrometheusTextFormat from 'parse-prometheus-text-format'

interface Sample {
  value?: string
  labels?: Record<string, string>
  buckets?: Record<string, string>
  count?: string
  sum?: string
}

interface Family {
  name: string
  help: string
  type: string
  metrics: Sample[]
}

export interface Scrape {
  families: Family[]
  /** The value of `name` whose labels include `labels`; undefined when there is none. */
  value(name: string, labels?: Record<string, string>): number | undefined
  /** Every sample of `name`. */
  samples(name: string): Sample[]
  /** A histogram's count (its only sample, or the one with `labels`). */
  count(name: string, labels?: Record<string, string>): number | undefined
  type(name: string): string | undefined
}

const matches = (s: Sample, labels: Record<string, string>): boolean =>
  Object.entries(labels).every(([k, v]) => s.labels?.[k] === v)

export function parseMetrics(text: string): Scrape {
  const families = (parsePrometheusTextFormat as (t: string) => Family[])(text)
  const family = (name: string): Family | undefined => families.find((f) => f.name === name)
  return {
    families,
    samples: (name) => family(name)?.metrics ?? [],
    value(name, labels = {}) {
      const s = family(name)?.metrics.find((m) => matches(m, labels))
      return s?.value === undefined ? undefined : Number(s.value)
    },
    count(name, labels = {}) {
      const s = family(name)?.metrics.find((m) => matches(m, labels))
      return s?.count === undefined ? undefined : Number(s.count)
    },
    type: (name) => family(name)?.type,
  }
}

export async function scrape(baseUrl: string): Promise<Scrape & { contentType: string }> {
  const res = await fetch(new URL('/metrics', baseUrl), { signal: AbortSignal.timeout(10_000) })
  if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}: ${await res.text()}`)
  return { ...parseMetrics(await res.text()), contentType: res.headers.get('content-type') ?? '' }
}
