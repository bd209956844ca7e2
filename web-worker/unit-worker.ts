// The Web Worker entry, bundled to dist/web/unit-worker.js: runs units of the built-in job types for
// the page through comlink (the page's runner declares the same kinds by default).
import { expose } from 'comlink'
import { builtinJobTypes } from '../jobs/index.js'
// runUnit straight from its file, not worker/portable.ts: the Web Worker bundle then holds only the
// kernels, the codec and comlink (43 KiB), not the daemon and nats.js.
import { runUnit } from '../worker/run-unit.js'
import type { UnitWorkerApi } from './unit-worker-api.js'

const api: UnitWorkerApi = { run: (task) => runUnit(task, builtinJobTypes) }
expose(api)
