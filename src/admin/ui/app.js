// sipsteer operator page: polls the admin API (status, events, metrics) and draws the
// server matrix, the event log, queries per region and the explain box. Changes are sent
// with the token typed into the page, kept in this variable only (never stored, never in a
// URL), as an Authorization header; the API takes changes from nothing else.
'use strict';
(function () {
  let token = null;
  let since = 0;
  let servers = [];
  let selected = '';
  let counts = null;
  const rates = {};
  const MAX_EVENTS = 500;

  const $ = (id) => document.getElementById(id);
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function age(secs) {
    const s = Math.max(0, Math.floor(secs || 0));
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm';
    if (s < 86400) return Math.floor(s / 3600) + 'h';
    return Math.floor(s / 86400) + 'd';
  }
  function clock(ms) {
    return new Date(ms).toISOString().replace('.000Z', 'Z');
  }
  async function getJSON(path) {
    const r = await fetch(path, { cache: 'no-store' });
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || r.status);
    return body;
  }
  function setConn(text, bad) {
    const c = $('conn');
    c.textContent = text;
    c.className = bad ? 'error' : 'muted';
  }

  function renderSummary(st) {
    const by = {};
    for (const s of st.servers) by[s.state] = (by[s.state] || 0) + 1;
    const parts = Object.keys(by).map((k) => by[k] + ' ' + k);
    const r = st.reload || {};
    let text = 'generation ' + st.generation + ' · reload ' + r.last_result + ' · ' + parts.join(', ');
    if (r.last_error) text += ' · last error: ' + r.last_error.split('\n')[0];
    $('summary').textContent = text;
  }

  function cell(s) {
    const name = s.region + '/' + s.server;
    const c = el('div', 'cell st-' + s.state + (name === selected ? ' selected' : ''));
    c.dataset.server = name;
    c.dataset.state = s.state;
    const head = el('div');
    head.appendChild(el('b', null, s.server));
    head.appendChild(document.createTextNode(' ' + s.state + ' '));
    if (s.suspect) head.appendChild(el('span', 'suspect', 'suspect'));
    c.appendChild(head);
    if (s.forced) {
      const f = s.forced_by === 'api' ? s.api_state : s.file_state;
      let t = 'forced ' + s.forced + ' by ' + s.forced_by;
      if (f && f.until_unix) t += ' until ' + clock(f.until_unix * 1000);
      if (f && f.note) t += ': ' + f.note;
      c.appendChild(el('div', null, t));
    }
    if (s.transports && s.transports.length) {
      // Health per transport: each transport's state and last probe.
      for (const t of s.transports) {
        const line = t.transport + ' ' + t.state + ' · ' + (t.check === 'none' ? 'not probed' : (t.last_result || 'pending'));
        c.appendChild(el('div', 'muted', line));
      }
    } else {
      let probe = s.check === 'none' ? 'not probed' : 'probe ' + (s.last_result || 'pending');
      if (s.rtt_ms !== null && s.rtt_ms !== undefined) probe += ' · ' + s.rtt_ms.toFixed(1) + ' ms';
      c.appendChild(el('div', 'muted', probe));
    }
    if (s.load || s.capacity) {
      const load = s.load || {};
      const cap = s.capacity || {};
      const part = (n, of, unit) => (n ?? '-') + (of ? '/' + of : '') + ' ' + unit;
      let l = 'load ' + part(load.calls, cap.calls, 'calls') + ', ' + part(load.cps, cap.cps, 'cps');
      if (s.headroom !== null && s.headroom !== undefined) l += ' · headroom ' + Math.round(s.headroom * 100) + '%';
      c.appendChild(el('div', null, l));
    }
    c.appendChild(el('div', 'muted', 'since last change ' + age(s.since_secs)));
    c.addEventListener('click', () => select(name));
    return c;
  }

  function renderMatrix() {
    const body = $('matrix').tBodies[0];
    const regions = [];
    const by = {};
    for (const s of servers) {
      if (!by[s.region]) { by[s.region] = []; regions.push(s.region); }
      by[s.region].push(s);
    }
    const rows = regions.map((r) => {
      const tr = el('tr');
      tr.dataset.region = r;
      tr.appendChild(el('th', null, r));
      tr.appendChild(el('td', 'qps', rates[r] === undefined ? '-' : rates[r].toFixed(1)));
      const td = el('td');
      const cells = el('div', 'cells');
      for (const s of by[r]) cells.appendChild(cell(s));
      td.appendChild(cells);
      tr.appendChild(td);
      return tr;
    });
    body.replaceChildren(...rows);
    const sel = $('act-server');
    const names = servers.map((s) => s.region + '/' + s.server);
    const have = Array.from(sel.options).map((o) => o.value);
    if (names.join(' ') !== have.join(' ')) {
      sel.replaceChildren(...names.map((n) => { const o = el('option', null, n); o.value = n; return o; }));
      if (selected) sel.value = selected;
    }
  }

  function select(name) {
    selected = name;
    $('act-server').value = name;
    renderMatrix();
  }

  async function refresh() {
    try {
      const st = await getJSON('/v1/status');
      servers = st.servers || [];
      renderSummary(st);
      renderMatrix();
      setConn('updated ' + new Date().toLocaleTimeString(), false);
    } catch (e) {
      setConn('admin api unreachable: ' + e.message, true);
    }
  }

  async function pollEvents() {
    try {
      const p = await getJSON('/v1/events?since=' + since);
      const list = $('events');
      for (const e of p.events) {
        const li = el('li', 'ev-' + e.kind, clock(e.unix_ms) + ' ' + e.kind + ' ' + e.subject + ': ' + e.message);
        li.dataset.kind = e.kind;
        li.dataset.subject = e.subject;
        list.insertBefore(li, list.firstChild);
      }
      while (list.children.length > MAX_EVENTS) list.removeChild(list.lastChild);
      since = p.next;
    } catch (e) {
      setConn('admin api unreachable: ' + e.message, true);
    }
  }

  async function pollRates() {
    try {
      const r = await fetch('/metrics', { cache: 'no-store' });
      const text = await r.text();
      const now = Date.now();
      const next = {};
      const re = /^sipsteer_region_answers_total\{region="([^"]*)"\} (\S+)$/;
      for (const line of text.split('\n')) {
        const m = re.exec(line);
        if (m) next[m[1]] = Number(m[2]);
      }
      if (counts) {
        const secs = (now - counts.at) / 1000;
        for (const k of Object.keys(next)) {
          if (secs > 0 && counts.values[k] !== undefined) rates[k] = Math.max(0, next[k] - counts.values[k]) / secs;
        }
      }
      counts = { at: now, values: next };
      renderMatrix();
    } catch (e) {
      setConn('admin api unreachable: ' + e.message, true);
    }
  }

  function useToken(ev) {
    ev.preventDefault();
    const t = $('token').value.trim();
    $('token').value = '';
    token = t || null;
    $('token-state').textContent = token ? 'token set (this tab only)' : 'read-only';
    for (const b of document.querySelectorAll('#act-form button')) b.disabled = !token;
  }

  async function act(state) {
    const name = $('act-server').value;
    const out = $('act-result');
    if (!token || !name) return;
    const body = { state: state };
    const note = $('act-note').value.trim();
    const until = $('act-until').value.trim();
    if (state !== 'clear') {
      if (note) body.note = note;
      if (until) body.until = until;
    }
    const parts = name.split('/');
    const path = '/v1/servers/' + encodeURIComponent(parts[0]) + '/' + encodeURIComponent(parts[1]) + '/state';
    try {
      const r = await fetch(path, {
        method: 'PUT',
        cache: 'no-store',
        credentials: 'omit',
        headers: { 'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      const j = await r.json();
      out.className = r.ok ? 'muted' : 'error';
      out.textContent = r.ok ? name + ': ' + j.state : (j.error || String(r.status));
    } catch (e) {
      out.className = 'error';
      out.textContent = e.message;
    }
    refresh();
    pollEvents();
  }

  function tiles(j) {
    const box = $('ex-tiles');
    const svc = j.service;
    if (!svc) {
      box.replaceChildren(el('span', 'muted', 'not a steered name: the answer does not depend on the client'));
      return;
    }
    box.replaceChildren(...svc.ranking.map((r, i) => {
      const answered = svc.tiers.indexOf(r.region) >= 0;
      const t = el('div', 'tile ' + (r.healthy ? 'healthy' : 'unhealthy') + (answered ? ' answered' : ''));
      t.dataset.region = r.region;
      t.appendChild(el('div', 'rank', '#' + (i + 1)));
      t.appendChild(el('div', null, r.region));
      t.appendChild(el('div', 'muted', r.distance_km === null ? 'distance unknown' : Math.round(r.distance_km) + ' km'));
      t.appendChild(el('div', null, (r.healthy ? 'healthy' : 'unhealthy') + (answered ? ' · answered' : '')));
      return t;
    }));
  }

  async function explain(ev) {
    ev.preventDefault();
    const q = new URLSearchParams();
    q.set('client', $('ex-client').value.trim());
    q.set('name', $('ex-name').value.trim());
    q.set('type', $('ex-type').value.trim() || 'A');
    const ecs = $('ex-ecs').value.trim();
    if (ecs) q.set('ecs', ecs);
    const pre = $('ex-trace');
    try {
      const j = await getJSON('/v1/explain?' + q.toString());
      tiles(j);
      q.set('format', 'text');
      const r = await fetch('/v1/explain?' + q.toString(), { cache: 'no-store' });
      pre.textContent = await r.text();
      pre.className = '';
    } catch (e) {
      $('ex-tiles').replaceChildren();
      pre.textContent = e.message;
      pre.className = 'error';
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('token-form').addEventListener('submit', useToken);
    $('explain-form').addEventListener('submit', explain);
    $('act-server').addEventListener('change', (e) => select(e.target.value));
    for (const b of document.querySelectorAll('#act-form button')) {
      b.addEventListener('click', () => act(b.dataset.state));
    }
    refresh();
    pollEvents();
    pollRates();
    setInterval(refresh, 1000);
    setInterval(pollEvents, 2000);
    setInterval(pollRates, 2000);
  });
})();
