// The Web Worker entry, bundled to dist/web/unit-worker.js: runs units for the page through comlink.
import { expose } from 'comlink'
// runUnit straight from its file, not worker/portable.ts: the Web Worker bundle then holds only the
// kernels, the codec and comlink (43 KiB), not the daemon and nats.js.
import { runUnit } from '../worker/run-unit.js'
import type { UnitWorkerApi } from './unit-worker-api.js'

const api: UnitWorkerApi = { run: runUnit }
expose(api)
