// connect(): a typed client of a Cohort coordinator's HTTP API, for Node and browsers (fetch only).
import type {
  BlobView,
  DatasetView,
  JobEvent,
  JobTypeView,
  JobView,
  ModuleView,
  ResultView,
} from '../shared/index.js'
import { ConfigError } from '../shared/index.js'
import { followEvents, type FollowOptions } from './events.js'
import { createTransport, type Transport } from './http.js'
import { JobHandle, type JobHandleOptions } from './job-handle.js'
import type { ResultOf, SubmitRequest } from './job-types.js'
import { uploadBody, type UploadBody, type UploadOptions } from './upload.js'

export interface ConnectOptions {
  /** The coordinator's base URL, e.g. `http://127.0.0.1:8080`. */
  url: string
  /** Sent as `Authorization: Bearer <key>` (default: none, for coordinators that allow anonymous callers). */
  apiKey?: string
  /** Each call's timeout (uploads have their own). Default 10000 ms. */
  timeoutMs?: number
  /** GETs refused with 429 are tried again this many times, after their Retry-After. Default 5. */
  retries?: number
  /** The fetch to use. Default: the global fetch. */
  fetch?: typeof fetch
}

/** A job this client submitted: its handle, and the job as POST /v1/jobs answered it. */
export type SubmittedJob<R> = JobHandle<R> & { readonly view: JobView }

export interface Client {
  readonly url: string
  /** Submit a job; the handle follows its events once listened to (or asked for its result). */
  submit<T extends string>(req: SubmitRequest<T>, opts?: JobHandleOptions): Promise<SubmittedJob<ResultOf<T>>>
  /** A handle on a job submitted earlier. */
  handle<R = unknown>(id: string, opts?: JobHandleOptions): JobHandle<R>
  /** GET /v1/jobs/:id. */
  job(id: string): Promise<JobView>
  /** The caller's most recent jobs (an admin: everyone's), newest first. */
  jobs(): Promise<JobView[]>
  /** GET /v1/jobs/:id/result. */
  result<R = unknown>(id: string): Promise<ResultView<R>>
  /** Cancel a queued or running job. */
  cancel(id: string): Promise<JobView>
  /** The job types the coordinator runs. */
  jobTypes(): Promise<JobTypeView[]>
  /** A job's events, each once and in order, across disconnects (see FollowOptions). */
  events(id: string, opts?: FollowOptions): AsyncGenerator<JobEvent>
  /** Upload a WebAssembly module (docs/wasm-jobs.md). */
  uploadModule(body: UploadBody, opts?: UploadOptions): Promise<ModuleView>
  /** Upload an input blob (up to the coordinator's blob limit). */
  uploadBlob(body: UploadBody, opts?: UploadOptions): Promise<BlobView>
  /** Upload a dataset (content-addressed chunks; docs/datasets.md). */
  uploadDataset(body: UploadBody, opts?: UploadOptions): Promise<DatasetView>
}

const UPLOAD_TIMEOUT_MS = 3600_000

function checkOptions(o: ConnectOptions): void {
  let url: URL
  try {
    url = new URL(o.url)
  } catch {
    throw new ConfigError(`url must be an absolute http(s) URL, got "${o.url}"`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new ConfigError(`url must be an http or https URL, got "${o.url}"`)
  if (o.apiKey !== undefined && !/^[\x21-\x7e]{1,512}$/.test(o.apiKey))
    throw new ConfigError('apiKey must be 1..512 printable ASCII characters without spaces')
  if (o.timeoutMs !== undefined && !(Number.isSafeInteger(o.timeoutMs) && o.timeoutMs > 0))
    throw new ConfigError('timeoutMs must be a positive integer')
  if (o.retries !== undefined && !(Number.isSafeInteger(o.retries) && o.retries >= 0))
    throw new ConfigError('retries must be an integer of 0 or more')
}

export function connect(opts: ConnectOptions): Client {
  checkOptions(opts)
  const t: Transport = createTransport({
    url: opts.url,
    ...(opts.apiKey === undefined ? {} : { apiKey: opts.apiKey }),
    timeoutMs: opts.timeoutMs ?? 10_000,
    retries: opts.retries ?? 5,
    ...(opts.fetch === undefined ? {} : { fetch: opts.fetch }),
  })
  const job = (id: string): string => `/v1/jobs/${encodeURIComponent(id)}`
  const upload = async <T>(
    path: string,
    type: string,
    body: UploadBody,
    o: UploadOptions = {},
  ): Promise<T> => {
    const b = uploadBody(body, o)
    const res = await t.json<T>('POST', path, {
      raw: { type, body: b.body, stream: b.stream },
      timeoutMs: o.timeoutMs ?? UPLOAD_TIMEOUT_MS,
      ...(o.signal === undefined ? {} : { signal: o.signal }),
    })
    b.finished()
    return res
  }
  return {
    url: opts.url,
    async submit(req, o) {
      const view = await t.json<JobView>('POST', '/v1/jobs', { json: req })
      return new JobHandle(t, view.id, view, o) as SubmittedJob<ResultOf<typeof req.type>>
    },
    handle: (id, o) => new JobHandle(t, id, undefined, o),
    job: (id) => t.json('GET', job(id)),
    jobs: async () => (await t.json<{ jobs: JobView[] }>('GET', '/v1/jobs')).jobs,
    result: (id) => t.json('GET', `${job(id)}/result`),
    cancel: (id) => t.json('DELETE', job(id)),
    jobTypes: async () => (await t.json<{ jobTypes: JobTypeView[] }>('GET', '/v1/job-types')).jobTypes,
    events: (id, o) => followEvents(t, id, o),
    uploadModule: (body, o) => upload('/v1/modules', 'application/wasm', body, o),
    uploadBlob: (body, o) => upload('/v1/blobs', 'application/octet-stream', body, o),
    uploadDataset: (body, o) => upload('/v1/datasets', 'application/octet-stream', body, o),
  }
}
