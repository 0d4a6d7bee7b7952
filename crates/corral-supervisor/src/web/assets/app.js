// corral's dashboard: the control API drawn as a page. No framework and
// nothing from elsewhere; the CSP allows only this origin's own files.
//
// Live parts: the event stream (SSE) moves the table as things happen; the
// usage (sparklines) and the selected instance's tree are asked for every
// PERIOD ms while the tab is visible; the selected service's log follows.
'use strict';
(() => {
  const SVG = 'http://www.w3.org/2000/svg';
  const PERIOD = 5000;      // usage and tree refresh, ms
  const POINTS = 60;        // samples per sparkline: five minutes
  const MAX_LOG = 500;      // log lines kept on screen
  const MAX_EVENTS = 100;   // events kept on screen
  const MAX_PARTIAL = 65536; // bytes of an unfinished log line kept
  const KINDS = ['transition', 'probe', 'alert', 'dump', 'retuned', 'fleet', 'daemon', 'log'];

  const $ = (id) => document.getElementById(id);
  const rows = new Map(); // "service/instance" -> row
  let selected = null;
  let following = null;
  let pending = null;
  let treeBusy = false;

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text != null) e.textContent = text;
    return e;
  }

  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }

  function bytes(n) {
    if (n == null) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + ' ' + units[i];
  }

  function say(text) { $('message').textContent = text; }

  function showLogin() {
    $('dash').hidden = true;
    $('login').hidden = false;
    $('token').focus();
  }

  async function api(path, opts) {
    const r = await fetch(path, Object.assign({ credentials: 'same-origin' }, opts || {}));
    if (r.status === 401) {
      showLogin();
      throw new Error('not logged in');
    }
    return r;
  }

  function push(series, v) {
    series.push(v);
    if (series.length > POINTS) series.shift();
  }

  // `floor`: the smallest top of the scale, so noise stays flat.
  function spark(cell, series, cls, floor) {
    let s = cell.querySelector('svg');
    if (!s) {
      s = svg('svg', { class: 'spark ' + cls, viewBox: '0 0 90 22', preserveAspectRatio: 'none' });
      s.appendChild(svg('polyline', {}));
      cell.prepend(s);
    }
    // The history so far fills the width; once POINTS long, it scrolls.
    const max = Math.max(floor, ...series);
    const step = 90 / Math.max(1, series.length - 1);
    const pts = series.map((v, i) => (i * step).toFixed(1) + ',' + (21 - (v / max) * 20).toFixed(1));
    s.firstChild.setAttribute('points', pts.join(' '));
  }

  function newRow(key, i) {
    const tr = el('tr', { 'data-service': i.service, 'data-instance': String(i.instance) });
    const cells = {};
    for (const c of ['name', 'state', 'ready', 'pid', 'restarts', 'cpu', 'mem', 'actions']) {
      cells[c] = el('td', { class: c });
      tr.appendChild(cells[c]);
    }
    cells.cpu.appendChild(el('span', { class: 'figure' }));
    cells.mem.appendChild(el('span', { class: 'figure' }));
    for (const action of ['start', 'stop', 'restart', 'dump']) {
      const b = el('button', { type: 'button', 'data-action': action, 'data-service': i.service }, action);
      b.addEventListener('click', (ev) => { ev.stopPropagation(); act(i.service, action); });
      cells.actions.appendChild(b);
    }
    tr.addEventListener('click', () => select(key));
    $('rows').appendChild(tr);
    return { tr, cells, cpu: [], mem: [], prev: null, status: i };
  }

  function draw(row, multi) {
    const i = row.status;
    const c = row.cells;
    c.name.textContent = multi ? i.service + '.' + i.instance : i.service;
    c.state.textContent = i.state;
    c.state.className = 'state state-' + i.state;
    c.ready.textContent = i.ready ? 'yes' : 'no';
    c.pid.textContent = i.pid == null ? '–' : String(i.pid);
    c.restarts.textContent = String(i.restarts);
    spark(c.cpu, row.cpu, 'cpu', 5);
    c.cpu.querySelector('.figure').textContent = row.cpu.length ? row.cpu[row.cpu.length - 1].toFixed(1) + ' %' : '–';
    spark(c.mem, row.mem, 'mem', 1);
    c.mem.querySelector('.figure').textContent = bytes(i.memory_bytes);
    row.tr.classList.toggle('selected', selected === i.service + '/' + i.instance);
  }

  // The instances now; with `sample`, one more point on each sparkline.
  async function load(sample) {
    const body = await (await api('/v1/services')).json();
    const now = Date.now();
    const seen = new Set();
    const counts = {};
    for (const i of body.instances) counts[i.service] = (counts[i.service] || 0) + 1;
    for (const i of body.instances) {
      const key = i.service + '/' + i.instance;
      seen.add(key);
      const row = rows.get(key) || newRow(key, i);
      rows.set(key, row);
      if (sample) {
        const p = row.prev;
        if (p && p.pid === i.pid && p.cpu != null && i.cpu_ms != null && now > p.t) {
          push(row.cpu, Math.max(0, ((i.cpu_ms - p.cpu) / (now - p.t)) * 100));
        } else {
          push(row.cpu, 0);
        }
        push(row.mem, i.memory_bytes || 0);
        row.prev = { t: now, cpu: i.cpu_ms, pid: i.pid };
      }
      row.status = i;
      draw(row, counts[i.service] > 1);
    }
    for (const [key, row] of rows) {
      if (!seen.has(key)) { row.tr.remove(); rows.delete(key); }
    }
    if ((!selected || !rows.has(selected)) && rows.size) select(rows.keys().next().value);
  }

  function soon() {
    if (pending) return;
    pending = setTimeout(() => { pending = null; load(false).then(tree).catch(() => {}); }, 250);
  }

  async function act(service, action) {
    say(action + ' ' + service + '…');
    try {
      const r = await api('/v1/services/' + encodeURIComponent(service) + '/' + action, {
        method: 'POST',
        headers: { 'X-Corral-CSRF': '1' },
      });
      const body = await r.json();
      say(r.ok ? action + ' ' + service + ': done' : action + ' ' + service + ': ' + (body.error || r.status));
    } catch (e) {
      say(action + ' ' + service + ': ' + e.message);
    }
    soon();
  }

  function select(key) {
    const row = rows.get(key);
    if (!row) return;
    const changed = selected !== key;
    selected = key;
    for (const r of rows.values()) r.tr.classList.toggle('selected', r === row);
    const i = row.status;
    $('selected').textContent = i.service + '.' + i.instance;
    tree();
    if (changed) follow(i.service);
  }

  // The selected instance's group as a graph: one node per member, an
  // edge from each parent in the group to its child. A member whose parent
  // is outside the group (an escapee adopted by the daemon) is a root.
  async function tree() {
    const row = selected && rows.get(selected);
    if (!row || treeBusy) return;
    treeBusy = true;
    try {
      const i = row.status;
      const path = '/v1/services/' + encodeURIComponent(i.service) + '/members?instance=' + i.instance;
      const body = await (await api(path)).json();
      if (selected === i.service + '/' + i.instance) drawTree(body);
    } catch (e) {
      // The next period tries again.
    } finally {
      treeBusy = false;
    }
  }

  function drawTree(body) {
    const out = $('tree');
    const members = body.members || [];
    const byPid = new Map(members.map((m) => [m.pid, m]));
    const kids = new Map();
    const roots = [];
    for (const m of members) {
      if (m.ppid !== m.pid && byPid.has(m.ppid)) {
        if (!kids.has(m.ppid)) kids.set(m.ppid, []);
        kids.get(m.ppid).push(m);
      } else {
        roots.push(m);
      }
    }
    roots.sort((a, b) => (a.pid === body.leader ? -1 : b.pid === body.leader ? 1 : a.pid - b.pid));
    const placed = [];
    const edges = [];
    const walk = (m, depth) => {
      const at = { m, x: 16 + depth * 150, y: 20 + placed.length * 36 };
      placed.push(at);
      for (const k of (kids.get(m.pid) || []).sort((a, b) => a.pid - b.pid)) {
        const child = walk(k, depth + 1);
        edges.push([at, child]);
      }
      return at;
    };
    for (const r of roots) walk(r, 0);
    const g = svg('g', {});
    for (const [a, b] of edges) {
      g.appendChild(svg('path', {
        class: 'edge', 'data-from': a.m.pid, 'data-to': b.m.pid,
        d: 'M' + a.x + ' ' + a.y + ' V' + b.y + ' H' + b.x,
      }));
    }
    for (const p of placed) {
      const m = p.m;
      const root = roots.includes(m);
      const cls = 'node' + (m.pid === body.leader ? ' leader' : root ? ' escapee' : '');
      const n = svg('g', { class: cls, 'data-pid': m.pid, 'data-ppid': m.ppid, transform: 'translate(' + p.x + ' ' + p.y + ')' });
      n.appendChild(svg('circle', { r: 6 }));
      const label = svg('text', { x: 12, y: 0 });
      const cmd = m.cmd.length > 48 ? m.cmd.slice(0, 47) + '…' : m.cmd;
      label.textContent = m.pid + '  ' + cmd;
      const sub = svg('text', { x: 12, y: 13, class: 'sub' });
      sub.textContent = 'pgid ' + m.pgid + ' · sid ' + m.sid + ' · ' + (m.cpu_ms == null ? '–' : m.cpu_ms + ' ms') + ' · ' + bytes(m.rss_bytes);
      const title = svg('title', {});
      title.textContent = m.cmd;
      n.append(title, label, sub);
      g.appendChild(n);
    }
    out.replaceChildren(g);
    out.setAttribute('height', String(Math.max(60, 20 + placed.length * 36)));
    out.dataset.members = String(members.length);
  }

  // The selected service's log: the last lines, then whatever comes.
  async function follow(service) {
    if (following) following.abort();
    const ctl = new AbortController();
    following = ctl;
    const pre = $('log');
    const lines = [];
    pre.textContent = '';
    const show = (more) => {
      const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      lines.push(...more);
      if (lines.length > MAX_LOG) lines.splice(0, lines.length - MAX_LOG);
      pre.textContent = lines.join('\n');
      if (stick) pre.scrollTop = pre.scrollHeight;
    };
    try {
      const path = '/v1/logs?service=' + encodeURIComponent(service) + '&n=200&follow=true';
      const r = await api(path, { signal: ctl.signal });
      const reader = r.body.getReader();
      const text = new TextDecoder();
      let partial = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        partial += text.decode(value, { stream: true });
        const parts = partial.split('\n');
        partial = parts.pop();
        if (partial.length > MAX_PARTIAL) { parts.push(partial); partial = ''; }
        if (parts.length) show(parts);
      }
    } catch (e) {
      if (e.name !== 'AbortError') show(['-- the log stream ended: ' + e.message + ' --']);
    }
  }

  function addEvent(e, atTop) {
    const list = $('event-list');
    const li = el('li', { 'data-kind': e.kind || 'transition' });
    const when = el('time', { datetime: e.ts }, (e.ts || '').slice(11, 19));
    const who = e.service ? e.service + '.' + e.instance + ' ' : '';
    const what = e.kind && e.kind !== 'transition' ? e.kind + ': ' : e.from + ' → ' + e.to + ' ';
    li.append(when, document.createTextNode(who + what + (e.reason ? '(' + e.reason + ')' : '')));
    if (atTop) list.prepend(li); else list.appendChild(li);
    while (list.children.length > MAX_EVENTS) list.lastChild.remove();
  }

  async function events() {
    const body = await (await api('/v1/events?n=50')).json();
    for (const e of body.events.slice().reverse()) addEvent(e, false);
    const live = $('live');
    const source = new EventSource('/v1/events/stream');
    source.onopen = () => { live.textContent = 'live'; live.className = 'on'; };
    source.onerror = () => { live.textContent = 'reconnecting'; live.className = 'off'; };
    for (const kind of KINDS) {
      source.addEventListener(kind, (m) => {
        addEvent(JSON.parse(m.data), true);
        soon();
      });
    }
  }

  async function start() {
    try {
      await load(true);
    } catch (e) {
      return;
    }
    $('login').hidden = true;
    $('dash').hidden = false;
    events().catch(() => {});
    setInterval(() => {
      if (!document.hidden) load(true).then(tree).catch(() => {});
    }, PERIOD);
  }

  start();
})();
