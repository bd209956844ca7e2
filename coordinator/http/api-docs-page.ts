// GET /docs/api: a page that renders GET /openapi.json — operations, their params, bodies and
// answers — with a small script of its own. Same discipline as /contribute: everything from this
// origin (no CDN, no inline script or style), text inserted as text, never as HTML.

/** The page's policy: its own script and stylesheet, and fetches of this origin only. */
export const API_DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ')

export const API_DOCS_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Cohort API</title>
<link rel="stylesheet" href="/docs/api/app.css">
<script type="module" src="/docs/api/app.js"></script>
</head>
<body>
<header><h1>Cohort API</h1><p id="intro">Loading <a href="/openapi.json">/openapi.json</a>…</p></header>
<nav id="toc"></nav>
<main id="ops"></main>
</body>
</html>
`

export const API_DOCS_CSS = `body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:1rem;color:#1b1b1b}
h1{margin:.2rem 0}h2{margin-top:2rem;border-bottom:1px solid #ccc}
section.op{border:1px solid #ddd;border-radius:6px;margin:.8rem 0;padding:.6rem .8rem}
.m{display:inline-block;min-width:4.5rem;font-weight:700;font-family:monospace}
.m.get{color:#0a6b2f}.m.post{color:#0b4fa8}.m.delete{color:#a30d0d}
code,pre{font-family:ui-monospace,monospace;font-size:13px}pre{background:#f6f6f6;padding:.5rem;overflow:auto;max-height:22rem}
details>summary{cursor:pointer}.lock{color:#7a5b00;font-size:12px;margin-left:.5rem}
nav a{margin-right:.8rem}
`

export const API_DOCS_JS = `const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e }
const pre = (value) => el('pre', JSON.stringify(value, null, 2))
function fold(title, value) { const d = el('details'); d.append(el('summary', title), pre(value)); return d }
function render(doc) {
  const intro = document.getElementById('intro')
  intro.textContent = doc.info.description + ' Version ' + doc.info.version + '. '
  const raw = el('a', 'The document as JSON'); raw.href = '/openapi.json'; intro.append(raw)
  const byTag = new Map()
  for (const [path, item] of Object.entries(doc.paths))
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags && op.tags[0]) || 'other'
      if (!byTag.has(tag)) byTag.set(tag, [])
      byTag.get(tag).push([method, path, op])
    }
  const main = document.getElementById('ops'); const toc = document.getElementById('toc')
  for (const [tag, ops] of byTag) {
    const a = el('a', tag); a.href = '#' + tag; toc.append(a)
    const h = el('h2', tag); h.id = tag; main.append(h)
    for (const [method, path, op] of ops) {
      const s = el('section', undefined, 'op')
      const line = el('div'); line.append(el('span', method.toUpperCase(), 'm ' + method), el('code', path))
      if (op.security && op.security.length > 0) line.append(el('span', 'API key', 'lock'))
      s.append(line, el('p', op.summary))
      if (op.parameters && op.parameters.length > 0) {
        const ul = el('ul')
        for (const p of op.parameters) ul.append(el('li', p.in + ' ' + p.name + (p.required ? ' (required)' : '') + (p.description ? ': ' + p.description : '')))
        s.append(ul)
      }
      if (op.requestBody) for (const [type, c] of Object.entries(op.requestBody.content)) s.append(fold('Request body: ' + type, c.schema))
      for (const [status, r] of Object.entries(op.responses)) {
        const res = r.$ref ? doc.components.responses[r.$ref.split('/').pop()] : r
        const types = res.content ? Object.keys(res.content).join(', ') : ''
        s.append(fold(status + ' ' + res.description + (types ? ' — ' + types : ''), res.content || {}))
      }
      main.append(s)
    }
  }
  const h = el('h2', 'schemas'); h.id = 'schemas'; main.append(h)
  const a = el('a', 'schemas'); a.href = '#schemas'; toc.append(a)
  for (const [name, schema] of Object.entries(doc.components.schemas)) main.append(fold(name, schema))
}
fetch('/openapi.json').then((r) => r.json()).then(render, (err) => { document.getElementById('intro').textContent = 'Could not load /openapi.json: ' + err })
`
