// The public stats page: the volunteers' and teams' leaderboards and one volunteer's record, from
// GET /v1/leaderboard and GET /v1/volunteers/:id of this origin, refreshed every 10 s. Names and
// teams are chosen by volunteers: they are written with textContent only, never as markup.
import { formatCredit, type VolunteerRecord } from '../shared/volunteer-views.js'
import type { Leaderboard, LeaderboardTeam, LeaderboardVolunteer } from '../shared/volunteer-views.js'

const PAGE = 20
const REFRESH_MS = 10_000
const TIMEOUT_MS = 10_000

const el = <T extends HTMLElement>(id: string): T => {
  const e = document.getElementById(id)
  if (e === null) throw new Error(`the page has no #${id}`)
  return e as T
}

async function get<T>(path: string): Promise<T> {
  const res = await fetch(path, { signal: AbortSignal.timeout(TIMEOUT_MS) })
  if (!res.ok) {
    const problem = (await res.json().catch(() => ({}))) as { detail?: string }
    throw new Error(problem.detail ?? `${res.status} ${res.statusText}`)
  }
  return (await res.json()) as T
}

/** A table row of text cells; `num` marks right-aligned numeric columns. */
function row(cells: { text: string; num?: boolean; title?: string }[]): HTMLTableRowElement {
  const tr = document.createElement('tr')
  for (const c of cells) {
    const td = document.createElement('td')
    td.textContent = c.text
    if (c.num === true) td.className = 'num'
    if (c.title !== undefined) td.title = c.title
    tr.append(td)
  }
  return tr
}

const shortId = (id: string): string => `${id.slice(0, 10)}…`

let offset = 0

async function refresh(): Promise<void> {
  const [people, teams] = await Promise.all([
    get<Leaderboard<LeaderboardVolunteer>>(`/v1/leaderboard?offset=${offset}&limit=${PAGE}`),
    get<Leaderboard<LeaderboardTeam>>('/v1/leaderboard?by=team&limit=20'),
  ])
  el('volunteers')
    .querySelector('tbody')
    ?.replaceChildren(
      ...people.entries.map((e) =>
        row([
          { text: String(e.rank), num: true },
          { text: e.name ?? shortId(e.id), title: e.id },
          { text: e.team ?? '' },
          { text: formatCredit(e.creditMs), num: true },
          { text: String(e.unitsValidated), num: true },
        ]),
      ),
    )
  const last = Math.min(people.total, offset + people.entries.length)
  el('page').textContent = people.total === 0 ? 'no credit yet' : `${offset + 1}–${last} of ${people.total}`
  el<HTMLButtonElement>('prev').disabled = offset === 0
  el<HTMLButtonElement>('next').disabled = last >= people.total
  el('teams')
    .querySelector('tbody')
    ?.replaceChildren(
      ...teams.entries.map((e) =>
        row([
          { text: String(e.rank), num: true },
          { text: e.team },
          { text: formatCredit(e.creditMs), num: true },
          { text: String(e.members), num: true },
        ]),
      ),
    )
}

function showRecord(r: VolunteerRecord): void {
  const items: [string, string][] = [
    ['Identity', r.id],
    ['Name', r.name ?? '—'],
    ['Team', r.team ?? '—'],
    ['Credit', formatCredit(r.creditMs)],
    ['Rank', r.rank === undefined ? '—' : String(r.rank)],
    ['Units validated', String(r.unitsValidated)],
    ['Results', `${r.results} (${r.invalid} disagreed)`],
    ['Runtimes', Object.keys(r.runtimes).join(', ') || '—'],
    ['First seen', r.firstSeen === undefined ? '—' : new Date(r.firstSeen).toLocaleString()],
    ['Last seen', r.lastSeen === undefined ? '—' : new Date(r.lastSeen).toLocaleString()],
  ]
  if (r.caught) items.push(['Standing', 'caught returning wrong results: off the leaderboard'])
  el('record').replaceChildren(
    ...items.flatMap(([k, v]) => {
      const dt = document.createElement('dt')
      dt.textContent = k
      const dd = document.createElement('dd')
      dd.textContent = v
      return [dt, dd]
    }),
  )
}

function status(text: string, state: 'ok' | 'error'): void {
  el('status').textContent = text
  document.body.dataset['state'] = state
}

async function tick(): Promise<void> {
  try {
    await refresh()
    status(`Updated ${new Date().toLocaleTimeString()}`, 'ok')
  } catch (err) {
    status(`Could not load: ${(err as Error).message}`, 'error')
  }
}

el('prev').addEventListener('click', () => {
  offset = Math.max(0, offset - PAGE)
  void tick()
})
el('next').addEventListener('click', () => {
  offset += PAGE
  void tick()
})
el('lookup').addEventListener('submit', (ev) => {
  ev.preventDefault()
  const id = el<HTMLInputElement>('lookup-id').value.trim()
  get<VolunteerRecord>(`/v1/volunteers/${encodeURIComponent(id)}`).then(showRecord, (err: unknown) => {
    el('record').replaceChildren()
    status(`No record: ${(err as Error).message}`, 'error')
  })
})
const wanted = new URLSearchParams(location.search).get('id')
if (wanted !== null) {
  el<HTMLInputElement>('lookup-id').value = wanted
  el<HTMLFormElement>('lookup').requestSubmit()
}
void tick()
setInterval(() => void tick(), REFRESH_MS)
