import { h } from './dom.js'
import { Feed } from './feed.js'
import { ago, bytes, dash, duration, num, when } from './format.js'
import { sparkline } from './sparkline.js'
import { drawTopology } from './topology.js'

/**
 * The console page: signs in when the node needs a token, follows the
 * node's event stream and draws each view it pushes (the topology, the
 * nodes, the replication links with their lag, the fail-over history).
 * Everything shown comes from the view; the page computes nothing but
 * layout and formatting, and keeps the lag series it was sent.
 */

const TOKEN_KEY = 'tandem.token'
const MAX_SAMPLES = 300

const $ = (id) => document.getElementById(id)

const state = {
  view: null,
  /** Lag samples per link key ([at, entries, ms]), as sent by the node. */
  series: new Map(),
  selected: null,
  triedToken: false,
}

const feed = new Feed({
  token: () => sessionStorage.getItem(TOKEN_KEY),
  onState: onFeedState,
  onEvent: onFeedEvent,
})

function onFeedState(feedState, detail) {
  const pill = $('feed-state')
  pill.className = `pill ${feedState === 'unauthorized' ? 'signed-out' : feedState}`
  if (feedState === 'live') pill.textContent = 'live'
  else if (feedState === 'connecting') pill.textContent = 'connecting'
  else if (feedState === 'retrying') pill.textContent = `reconnecting: ${detail}`
  else if (feedState === 'unauthorized') showLogin()
}

function onFeedEvent(event, data) {
  if (event === 'snapshot') {
    state.series = new Map(Object.entries(data.series))
    render(data.view)
  } else if (event === 'view') {
    for (const [key, sample] of Object.entries(data.samples)) {
      let list = state.series.get(key)
      if (!list) state.series.set(key, (list = []))
      if (list.length === 0 || list[list.length - 1][0] < sample[0]) list.push(sample)
      if (list.length > MAX_SAMPLES) list.splice(0, list.length - MAX_SAMPLES)
    }
    render(data)
  }
}

// ---- signing in -------------------------------------------------------------

function showLogin() {
  // Nothing of the group stays on the page without a token.
  state.view = null
  state.series.clear()
  $('dashboard').hidden = true
  for (const id of ['nodes', 'links', 'epochs', 'rollbacks']) $(id).tBodies[0].replaceChildren()
  $('topology').replaceChildren()
  $('served-by').textContent = 'this node'
  for (const id of ['master-address', 'master-epoch', 'master-lease', 'node-count', 'last-failover']) {
    $(id).textContent = dash
  }
  $('sign-out').hidden = true
  $('login').hidden = false
  $('login-error').textContent = state.triedToken ? 'The node refused that token.' : ''
  $('feed-state').textContent = 'signed out'
  $('token').focus()
}

$('login-form').addEventListener('submit', (ev) => {
  ev.preventDefault()
  const token = $('token').value.trim()
  if (!token) return
  sessionStorage.setItem(TOKEN_KEY, token)
  state.triedToken = true
  $('token').value = ''
  $('login').hidden = true
  feed.start()
})

$('sign-out').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY)
  state.triedToken = false
  feed.stop()
  showLogin()
})

// ---- drawing ------------------------------------------------------------------

function render(view) {
  state.view = view
  const byKey = new Map(view.nodes.map((n) => [n.key, n]))
  const name = (key) => byKey.get(key)?.address ?? key ?? dash
  $('login').hidden = true
  $('dashboard').hidden = false
  $('sign-out').hidden = !sessionStorage.getItem(TOKEN_KEY)
  $('served-by').textContent = name(view.self)
  renderSummary(view, byKey)
  $('truncated').hidden = !view.truncated

  // Redrawing replaces the SVG's nodes: give focus back to the node that had it.
  const focused = document.activeElement?.closest?.('#topology .node')?.getAttribute('data-key')
  drawTopology($('topology'), view, { selected: state.selected, onSelect: select })
  if (focused)
    $('topology')
      .querySelector(`.node[data-key="${CSS.escape(focused)}"]`)
      ?.focus()

  renderNodes(view)
  renderLinks(view, byKey, name)
  renderHistory(view, name)
  renderRollbacks(view)
}

function renderSummary(view, byKey) {
  const master = view.master ? byKey.get(view.master) : null
  const addr = $('master-address')
  addr.textContent = master
    ? master.address
    : view.mesh
      ? `none: multi-master, ${view.mesh.peers.length} peers take writes`
      : 'none (read-only)'
  addr.dataset.key = master?.key ?? ''
  $('master-epoch').textContent = master ? String(master.epoch) : dash
  $('master-lease').textContent = !master
    ? dash
    : master.lease
      ? master.lease.held
        ? `held, ${duration(master.lease.remainingMs)} left`
        : 'lapsed'
      : 'no fail-over group'
  const down = view.nodes.filter((n) => !n.reachable).length
  $('node-count').textContent = `${view.nodes.length}${down ? ` (${down} not answering)` : ''}`
  const last = [...view.history].reverse().find((e) => e.why === 'election' || e.why === 'promote')
  $('last-failover').textContent = last
    ? `epoch ${last.epoch}, ${last.at === null ? 'time unknown' : ago(last.at, view.at)} (${last.why})`
    : 'none recorded'
}

function select(key) {
  state.selected = state.selected === key ? null : key
  if (state.view) render(state.view)
  const row = document.querySelector(`#nodes tr[data-key="${CSS.escape(key)}"]`)
  row?.scrollIntoView({ block: 'nearest' })
}

/** Labels each cell with its column's heading, for the stacked layout at phone width. */
function labelCells(table) {
  const heads = [...table.tHead.rows[0].cells].map((c) => c.textContent)
  for (const row of table.tBodies[0].rows) {
    if (row.cells.length !== heads.length) continue
    for (let i = 0; i < heads.length; i++) row.cells[i].dataset.label = heads[i]
  }
}

function cell(text, attrs = {}) {
  return h('td', attrs, text)
}

function renderNodes(view) {
  const table = $('nodes')
  table.classList.toggle(
    'no-keys',
    view.nodes.every((n) => n.keys === null),
  )
  const rows = [...view.nodes]
    .sort((a, b) => (a.key === view.master ? -1 : b.key === view.master ? 1 : a.address.localeCompare(b.address)))
    .map((n) => {
      const role = n.key === view.master ? 'master' : (n.role ?? 'unknown')
      return h(
        'tr',
        {
          'data-key': n.key,
          'data-role': n.role ?? '',
          class: `${n.reachable ? '' : 'down'} ${n.key === state.selected ? 'selected' : ''}`.trim(),
        },
        h('th', { scope: 'row' }, h('span', { class: 'mono' }, n.address), n.key === view.self ? ' (this node)' : ''),
        cell(n.reachable ? role : `${role}?`, { class: `role ${role}` }),
        cell(num(n.epoch), { class: 'num' }),
        cell(num(n.seq), { class: 'num' }),
        cell(num(n.writesPerSec, 1), { class: 'num writes' }),
        cell(num(n.readsPerSec, 1), { class: 'num reads' }),
        cell(num(n.avgGroup, 1), { class: 'num' }),
        cell(num(n.keys), { class: 'num keys-col' }),
        cell(bytes(n.diskBytes), { class: 'num' }),
        cell(duration(n.uptimeMs), { class: 'num' }),
        cell(n.version ?? dash),
        cell(n.reachable ? 'now' : `${ago(n.lastSeenAt, view.at)}${n.error ? ` (${n.error})` : ''}`),
      )
    })
  table.tBodies[0].replaceChildren(...rows)
  labelCells(table)
}

function renderLinks(view, byKey, name) {
  const rows = view.edges.map((e) => {
    const down = byKey.get(e.to)
    const seriesKey = e.kind === 'stream' ? e.to : `${e.from}>${e.to}`
    const sync = down?.sync
    return h(
      'tr',
      { 'data-from': e.from, 'data-to': e.to, 'data-kind': e.kind, class: e.stale ? 'down' : '' },
      h('th', { scope: 'row', class: 'mono' }, name(e.to)),
      cell(name(e.from), { class: 'mono' }),
      cell(e.kind === 'peer' ? `peer, ${e.state}` : e.stale ? `${e.state} (stale)` : e.state, { class: 'state' }),
      cell(num(e.lagEntries), { class: 'num lag-entries' }),
      cell(num(e.lagMs), { class: 'num lag-ms' }),
      h('td', {}, sparkline(state.series.get(seriesKey) ?? [])),
      cell(sync ? `${num(sync.fullSyncs)} / ${num(sync.partialSyncs)}` : dash, { class: 'num' }),
    )
  })
  if (rows.length === 0) rows.push(h('tr', {}, h('td', { colspan: 7 }, 'No replication links.')))
  $('links').tBodies[0].replaceChildren(...rows)
  labelCells($('links'))
}

function renderHistory(view, name) {
  const rows = [...view.history]
    .reverse()
    .map((e) =>
      h(
        'tr',
        { 'data-epoch': e.epoch },
        h('th', { scope: 'row', class: 'num' }, num(e.epoch)),
        cell(num(e.startSeq), { class: 'num' }),
        cell(e.byKey ? name(e.byKey) : e.by, { class: 'mono' }),
        cell(e.at === null ? dash : `${when(e.at)} (${ago(e.at, view.at)})`),
        cell(e.why ?? dash),
      ),
    )
  if (rows.length === 0) rows.push(h('tr', {}, h('td', { colspan: 5 }, 'No epochs yet.')))
  $('epochs').tBodies[0].replaceChildren(...rows)
  labelCells($('epochs'))
}

function renderRollbacks(view) {
  const rows = view.nodes
    .filter((n) => n.rollbacks && (n.rollbacks.count > 0 || n.rollbacks.files.length > 0))
    .map((n) =>
      h(
        'tr',
        {},
        h('th', { scope: 'row', class: 'mono' }, n.address),
        cell(num(n.rollbacks.count), { class: 'num' }),
        cell(num(n.rollbacks.entries), { class: 'num' }),
        h(
          'td',
          { class: 'files mono' },
          (n.rollbacks.files.length > 0 ? n.rollbacks.files : [n.rollbacks.lastFile].filter(Boolean)).map((f) =>
            h('div', {}, f),
          ),
        ),
      ),
    )
  if (rows.length === 0) rows.push(h('tr', {}, h('td', { colspan: 4 }, 'No rollbacks.')))
  $('rollbacks').tBodies[0].replaceChildren(...rows)
  labelCells($('rollbacks'))
}

feed.start()
