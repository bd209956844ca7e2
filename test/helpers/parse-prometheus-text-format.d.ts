declare module 'parse-prometheus-text-format' {
  /** Metric families of a Prometheus text exposition; throws on a line it cannot parse. */
  export default function parsePrometheusTextFormat(text: string): unknown[]
}
