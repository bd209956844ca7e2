// Build: transpile every TypeScript source to dist/ (same layout, ESM), then bundle browser entries.
import { build } from 'esbuild'
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs'
import { basename, join } from 'node:path'

const roots = [
  'client',
  'coordinator',
  'worker',
  'web-worker',
  'jobs',
  'shared',
  'scripts',
  'test',
  'bench',
  'examples',
]

function collect(dir, out) {
  if (!existsSync(dir)) return out
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    // AssemblyScript sources (examples/*/assembly) compile with asc, not esbuild.
    if (statSync(p).isDirectory()) {
      if (name !== 'assembly') collect(p, out)
    } else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p)
  }
  return out
}

const entryPoints = roots.flatMap((r) => collect(r, []))
await build({
  entryPoints,
  outdir: 'dist',
  outbase: '.',
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
})

// Remove outputs whose source is gone (dist/ is not wiped, so a build never pulls files from
// under a running process).
function prune(dir) {
  if (!existsSync(dir)) return
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) {
      if (p !== join('dist', 'web')) prune(p)
      continue
    }
    // Declarations (npm run build:types) count as outputs of their source too.
    const source = p.slice('dist/'.length).replace(/(\.d\.ts|\.js(\.map)?)$/, '.ts')
    if (!existsSync(source)) rmSync(p)
  }
}
prune('dist')

// Browser bundles, when present: the contribute page and its Web Worker, and the operators'
// dashboard (dist/web/dashboard.js), the public stats page (dist/web/stats.js).
const browserEntries = [
  { in: 'web-worker/page.ts', out: 'page' },
  { in: 'web-worker/unit-worker.ts', out: 'unit-worker' },
  { in: 'dashboard/main.ts', out: 'dashboard' },
  { in: 'stats/main.ts', out: 'stats' },
].filter((e) => existsSync(e.in))
if (browserEntries.length > 0) {
  await build({
    entryPoints: browserEntries,
    outdir: 'dist/web',
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'chrome120',
    minify: true,
    sourcemap: 'linked',
    logLevel: 'warning',
  })
}
// The pages' HTML shells, stylesheets and icon, served next to the bundles.
const pageFiles = [
  'web-worker/contribute.html',
  'web-worker/contribute.css',
  'web-worker/icon.svg',
  'dashboard/dashboard.html',
  'dashboard/dashboard.css',
  'stats/stats.html',
  'stats/stats.css',
]
for (const file of pageFiles.filter((p) => existsSync(p))) {
  mkdirSync('dist/web', { recursive: true })
  copyFileSync(file, join('dist/web', basename(file)))
}
