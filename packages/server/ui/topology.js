import { s } from './dom.js'
import { ago, duration, num } from './format.js'

/**
 * The topology picture: a tree per root (a master, or any node whose
 * upstream is unknown), downstreams below the node they stream from, and
 * multi-master peers side by side on the top row joined by arcs. Each node
 * is a focusable button (Enter or Space selects it in the tables).
 */

const W = 220
const H = 68
const GAP_X = 28
const GAP_Y = 64
const PAD = 16
const ARC = 44
/** Room under the picture for the mesh's convergence line. */
const MESH_LINE = 30

/** How far above the nodes the arc between peers `span` columns apart peaks (a cubic's peak is 3/4 of its control height). */
function arcRise(span) {
  return Math.round(0.75 * ARC * Math.max(1, span))
}

/** One direction of a peer link: its state and how far the puller is behind. */
function peerLabel(e) {
  if (!e) return '?'
  return e.lagEntries === null ? e.state : `${e.state} ${num(e.lagEntries)}·${num(e.lagMs)} ms`
}

const ROLE_ORDER = { master: 0, peer: 1, replica: 2, witness: 3 }

/** Positions of every node: { key -> {x, y} }, and the picture's size. */
export function layout(view) {
  const byKey = new Map(view.nodes.map((n) => [n.key, n]))
  const children = new Map()
  const hasParent = new Set()
  for (const e of view.edges) {
    if (e.kind !== 'stream' || !byKey.has(e.from) || !byKey.has(e.to)) continue
    if (!children.has(e.from)) children.set(e.from, [])
    children.get(e.from).push(e.to)
    hasParent.add(e.to)
  }
  const order = (a, b) => {
    const na = byKey.get(a)
    const nb = byKey.get(b)
    if ((a === view.master) !== (b === view.master)) return a === view.master ? -1 : 1
    const ra = ROLE_ORDER[na.role] ?? 9
    const rb = ROLE_ORDER[nb.role] ?? 9
    if (ra !== rb) return ra - rb
    return na.address.localeCompare(nb.address)
  }
  for (const list of children.values()) list.sort(order)
  const roots = view.nodes.map((n) => n.key).filter((k) => !hasParent.has(k))
  roots.sort(order)
  // A cycle (a misconfigured loop of replicas) has no root: start it anywhere.
  const placed = new Map()
  let leaves = 0
  let depthMax = 0
  const place = (key, depth) => {
    if (placed.has(key)) return placed.get(key).x
    placed.set(key, { x: 0, depth })
    depthMax = Math.max(depthMax, depth)
    const kids = (children.get(key) ?? []).filter((k) => !placed.has(k))
    let x
    if (kids.length === 0) x = leaves++
    else {
      const xs = kids.map((k) => place(k, depth + 1))
      x = (xs[0] + xs[xs.length - 1]) / 2
    }
    placed.get(key).x = x
    return x
  }
  for (const r of roots) place(r, 0)
  for (const n of view.nodes) if (!placed.has(n.key)) place(n.key, 0)
  // Peer arcs rise over the top row, higher the further apart the peers are.
  let span = 0
  for (const e of view.edges) {
    if (e.kind !== 'peer' || !placed.has(e.from) || !placed.has(e.to)) continue
    span = Math.max(span, Math.abs(placed.get(e.from).x - placed.get(e.to).x))
  }
  const top = span > 0 ? arcRise(span) + 8 : 0
  const foot = view.mesh ? MESH_LINE : 0
  const pos = new Map()
  for (const [key, p] of placed) {
    pos.set(key, { x: PAD + p.x * (W + GAP_X), y: PAD + top + p.depth * (H + GAP_Y) })
  }
  const width = PAD * 2 + Math.max(1, leaves) * (W + GAP_X) - GAP_X
  const height = PAD * 2 + top + (depthMax + 1) * (H + GAP_Y) - GAP_Y + foot
  return { pos, width, height }
}

function roleClass(n, view) {
  if (!n.reachable) return 'down'
  if (n.key === view.master) return 'master'
  return n.role ?? 'replica'
}

function nodeLines(n, view) {
  const role = n.role ?? 'unknown'
  const second = `${role}${n.epoch === null ? '' : ` · epoch ${n.epoch}`}${n.seq === null ? '' : ` · seq ${num(n.seq)}`}`
  let third
  if (!n.reachable) third = `not answering · seen ${ago(n.lastSeenAt, view.at)}`
  else if (n.role === 'master')
    third = n.lease
      ? n.lease.held
        ? `lease held · ${duration(n.lease.remainingMs)} left`
        : 'lease lapsed: not taking writes'
      : n.readOnly
        ? 'read-only'
        : 'taking writes'
  else if (n.role === 'witness') third = 'votes, holds no data'
  else if (n.multi)
    third = `${n.readOnly ? 'read-only' : 'taking writes'} · digest ${n.multi.digest ? n.multi.digest.slice(0, 8) : '-'}`
  else if (n.link) third = `${n.link.state} · lag ${num(n.link.lagEntries)} / ${num(n.link.lagMs)} ms`
  else third = n.upstream ? 'following' : 'no upstream'
  return [n.address, second, third]
}

/**
 * Draws `view` into `svg`. `selected` is the selected node's key;
 * `onSelect(key)` is called when a node is clicked or activated by key.
 */
export function drawTopology(svg, view, { selected, onSelect }) {
  const { pos, width, height } = layout(view)
  const byKey = new Map(view.nodes.map((n) => [n.key, n]))
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`)
  svg.setAttribute('width', String(width))
  svg.setAttribute('height', String(height))
  svg.style.maxWidth = `${width}px`

  const defs = s(
    'defs',
    {},
    s(
      'marker',
      {
        id: 'arrow',
        viewBox: '0 0 10 10',
        refX: 10,
        refY: 5,
        markerWidth: 7,
        markerHeight: 7,
        orient: 'auto-start-reverse',
      },
      s('path', { class: 'arrow', d: 'M0,0 L10,5 L0,10 z' }),
    ),
  )

  const edges = []
  const peerPairs = new Set()
  for (const e of view.edges) {
    const a = pos.get(e.from)
    const b = pos.get(e.to)
    if (!a || !b) continue
    const label =
      e.lagEntries === null ? e.state : `${num(e.lagEntries)} · ${num(e.lagMs)} ms${e.stale ? ' (stale)' : ''}`
    if (e.kind === 'peer') {
      // One arc per pair of peers, labelled with both directions (each side pulls from the other).
      const pair = [e.from, e.to].sort()
      const id = pair.join('|')
      if (peerPairs.has(id)) continue
      peerPairs.add(id)
      const [left, right] = a.x <= b.x ? [e.from, e.to] : [e.to, e.from]
      const pl = pos.get(left)
      const pr = pos.get(right)
      const toRight = view.edges.find((x) => x.kind === 'peer' && x.from === left && x.to === right)
      const toLeft = view.edges.find((x) => x.kind === 'peer' && x.from === right && x.to === left)
      const streaming = toRight?.state === 'streaming' && toLeft?.state === 'streaming'
      const x1 = pl.x + W / 2
      const x2 = pr.x + W / 2
      const y = Math.min(pl.y, pr.y)
      const rise = arcRise(Math.round(Math.abs(x2 - x1) / (W + GAP_X)))
      const d = `M${x1},${y} C${x1},${y - rise / 0.75} ${x2},${y - rise / 0.75} ${x2},${y}`
      const name = (k) => byKey.get(k)?.address ?? k
      const text = `${peerLabel(toLeft)} ← → ${peerLabel(toRight)}`
      edges.push(
        s(
          'path',
          {
            class: `edge peer ${streaming ? 'streaming' : 'broken'}`,
            d,
            'data-from': left,
            'data-to': right,
            'data-state': `${toLeft?.state ?? 'none'} ${toRight?.state ?? 'none'}`,
          },
          s(
            'title',
            {},
            `${name(right)} pulls from ${name(left)}: ${peerLabel(toRight)}; ${name(left)} pulls from ${name(right)}: ${peerLabel(toLeft)}`,
          ),
        ),
        s('text', { class: 'edge-label', x: (x1 + x2) / 2, y: y - rise + 14, 'text-anchor': 'middle' }, text),
      )
      continue
    }
    const x1 = a.x + W / 2
    const y1 = a.y + H
    const x2 = b.x + W / 2
    const y2 = b.y
    const my = (y1 + y2) / 2
    const d = `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2 - 2}`
    const cls = `edge ${e.state === 'streaming' ? 'streaming' : ''} ${e.stale ? 'stale' : ''}`
    edges.push(
      s('path', { class: cls, d, 'marker-end': 'url(#arrow)', 'data-from': e.from, 'data-to': e.to }),
      s('text', { class: 'edge-label', x: (x1 + x2) / 2 + 6, y: my + 4 }, label),
    )
  }

  const nodes = []
  for (const n of view.nodes) {
    const p = pos.get(n.key)
    if (!p) continue
    const lines = nodeLines(n, view)
    const cls = ['node', roleClass(n, view), n.key === view.self ? 'self' : '', n.key === selected ? 'selected' : '']
    const label = `${lines.join(', ')}${n.key === view.self ? ' (this console is served by this node)' : ''}`
    const activate = (ev) => {
      if (ev.type === 'keydown' && ev.key !== 'Enter' && ev.key !== ' ') return
      ev.preventDefault()
      onSelect(n.key)
    }
    nodes.push(
      s(
        'g',
        {
          class: cls.join(' ').trim(),
          transform: `translate(${p.x},${p.y})`,
          tabindex: 0,
          role: 'button',
          'aria-label': label,
          'aria-pressed': n.key === selected ? 'true' : 'false',
          'data-key': n.key,
          'data-address': n.address,
          'data-role': n.role ?? '',
          'data-reachable': String(n.reachable),
          'data-epoch': n.epoch ?? '',
          onclick: activate,
          onkeydown: activate,
        },
        s('title', {}, label),
        s('rect', { width: W, height: H, rx: 10 }),
        s('text', { class: 'addr', x: 12, y: 21 }, lines[0]),
        s('text', { class: 'sub', x: 12, y: 40 }, lines[1]),
        s('text', { class: 'sub', x: 12, y: 57 }, lines[2]),
      ),
    )
  }
  const extra = []
  if (view.mesh) {
    const m = view.mesh
    const text = m.converged
      ? `mesh of ${m.peers.length} peers converged · digest ${m.digest ? m.digest.slice(0, 12) : '-'}`
      : `mesh of ${m.peers.length} peers NOT converged: ${m.reason}`
    extra.push(
      s(
        'text',
        {
          class: `mesh-state ${m.converged ? 'converged' : 'diverged'}`,
          id: 'mesh-state',
          x: PAD,
          y: height - PAD + 4,
          'data-converged': String(m.converged),
          role: 'status',
        },
        text,
      ),
    )
  }
  svg.replaceChildren(defs, ...edges, ...nodes, ...extra)
  return byKey
}
