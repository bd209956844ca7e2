#!/usr/bin/env node
// The `cohort` command: runs the compiled CLI (build it with `npm run build`).
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const entry = new URL('../dist/scripts/cohort.js', import.meta.url)
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('cohort: the project is not built yet; run `npm run build` (or `npm start`) first\n')
  process.exit(2)
}
await import(entry.href)
