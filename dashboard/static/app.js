// edgeflow dashboard: fetches the JSON API (/api/...) and draws it with uPlot.
//
// Safety rule of this file: every value that came from the data (domains, client addresses,
// reject samples, alert details) reaches the page as text — textContent, Text nodes,
// setAttribute — never as HTML. There is no innerHTML here, and the server's content
// security policy forbids inline script anyway.
(() => {
  'use strict';

  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];
  const body = document.body;
  const page = body.dataset.page;
  const pageDomain = body.dataset.domain || null;
  const NA = '—';
  const COLORS = {
    blue: '#2563eb', teal: '#0d9488', violet: '#7c3aed', red: '#dc2626', amber: '#d97706', green: '#16a34a',
    gray: '#94a3b8', status: ['#94a3b8', '#16a34a', '#2563eb', '#d97706', '#dc2626'],
  };

  // ---------------------------------------------------------------- DOM and formatting

  /** Creates an element; `text` and attributes are set as text, children appended as nodes. */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value == null || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = value;
      else if (key === 'dataset') Object.assign(node.dataset, value);
      else node.setAttribute(key, value);
    }
    for (const child of children) if (child != null) node.append(child);
    return node;
  }

  const fmt = {
    num(v, digits = 0) {
      if (v == null || !Number.isFinite(v)) return NA;
      return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
    },
    pct(v, digits = 2) { return v == null || !Number.isFinite(v) ? NA : fmt.num(v * 100, digits) + '%'; },
    mbps(v) { return fmt.num(v, 3); },
    ms(v) { return v == null ? NA : fmt.num(v, 1) + ' ms'; },
    bytes(v) {
      if (v == null) return NA;
      const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
      let i = 0;
      while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
      return fmt.num(v, i === 0 ? 0 : 1) + ' ' + units[i];
    },
    minute(t) { return t == null ? NA : new Date(t * 1000).toISOString().slice(0, 16).replace('T', ' '); },
    clock(t) { return new Date(t * 1000).toISOString().slice(11, 16); },
  };

  function setStat(name, text) {
    const node = $(`[data-stat="${name}"]`);
    if (node) node.textContent = text;
  }

  function showError(message) {
    const box = $('#error');
    if (!box) return;
    box.hidden = !message;
    box.textContent = message || '';
  }

  function empty(text) { return el('p', { class: 'empty', text }); }

  // ---------------------------------------------------------------- time range

  const PRESET_SECS = { '15m': 900, '1h': 3600, '6h': 21600, '24h': 86400, '7d': 604800, '30d': 2592000 };

  function rangeParams() {
    const q = new URLSearchParams(location.search);
    const out = new URLSearchParams();
    if (q.get('from')) {
      out.set('from', q.get('from'));
      if (q.get('to')) out.set('to', q.get('to'));
    } else {
      out.set('range', PRESET_SECS[q.get('range')] ? q.get('range') : '1h');
    }
    return out;
  }

  function rangeSecsGuess() {
    const q = rangeParams();
    if (q.get('range')) return PRESET_SECS[q.get('range')];
    return lastRange ? lastRange.secs : 3600;
  }

  function api(path, extra) {
    const q = rangeParams();
    for (const [k, v] of Object.entries(extra || {})) if (v != null) q.set(k, v);
    return `${path}?${q}`;
  }

  function withRange(href) { return `${href}?${rangeParams()}`; }

  function navigate(params) {
    const q = new URLSearchParams(location.search);
    for (const k of ['range', 'from', 'to']) q.delete(k);
    for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
    history.pushState(null, '', `${location.pathname}?${q}`);
    refresh(true);
  }

  let lastRange = null;

  function showRange(range) {
    lastRange = range;
    body.dataset.from = range.from;
    body.dataset.to = range.to;
    const label = $('#range-label');
    if (label) label.textContent = `${fmt.minute(range.from)} → ${fmt.minute(range.to)} UTC`;
    for (const button of $$('#range button[data-range]')) {
      button.setAttribute('aria-pressed', String(button.dataset.range === range.preset));
    }
    const form = $('#custom');
    if (form && document.activeElement?.form !== form) {
      form.elements.from.value = range.from_iso.slice(0, 16);
      form.elements.to.value = range.to_iso.slice(0, 16);
    }
    for (const link of $$('a[data-keep-range]')) link.href = withRange('/');
  }

  function setupRangePicker() {
    for (const button of $$('#range button[data-range]')) {
      button.addEventListener('click', () => navigate({ range: button.dataset.range }));
    }
    const form = $('#custom');
    if (form) {
      form.addEventListener('submit', (event) => {
        event.preventDefault();
        navigate({ from: form.elements.from.value, to: form.elements.to.value });
      });
    }
    window.addEventListener('popstate', () => refresh(true));
  }

  /** A drag across a chart selects that span as a custom range. */
  function selectRange(fromSec, toSec) {
    const iso = (t) => new Date(t * 1000).toISOString().slice(0, 16);
    navigate({ from: iso(Math.floor(fromSec)), to: iso(Math.ceil(toSec)) });
  }

  // ---------------------------------------------------------------- charts

  const charts = new Map();
  const CHART_HEIGHT = 220;

  /**
   * Draws (or updates) a uPlot chart in #id. spec: { key, series: [{label, color, fill,
   * bars, dash, width}], ySuffix, yMax, legend(v, seriesIndex, dataIndex), onSelect(from,
   * to, u) (a drag across the chart; default: make it the page's custom range) }.
   */
  function drawChart(id, spec, data) {
    const box = document.getElementById(id);
    if (!box || typeof uPlot === 'undefined') return;
    box.dataset.empty = String(!data.slice(1).some((values) => values.some((v) => v != null && v !== 0)));
    const existing = charts.get(id);
    if (existing && existing.key === spec.key) {
      existing.u.setData(data);
      return;
    }
    if (existing) existing.u.destroy();
    const suffix = spec.ySuffix || '';
    // Tick labels carry as many decimals as the tick spacing needs.
    const tick = (v, incr) => fmt.num(v, incr >= 1 ? 0 : Math.min(6, Math.ceil(-Math.log10(incr) - 1e-9))) + suffix;
    const opts = {
      width: box.clientWidth || 600,
      height: CHART_HEIGHT,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
      cursor: { drag: { x: true, y: false, setScale: false }, points: { size: 6 } },
      legend: { live: true },
      scales: {
        x: { time: true },
        y: { range: (u, min, max) => [0, spec.yMax != null ? spec.yMax : (max > 0 ? max * 1.12 : 1)] },
      },
      axes: [
        { stroke: '#64748b', grid: { stroke: '#eef2f7', width: 1 }, ticks: { stroke: '#e2e8f0', width: 1 } },
        { stroke: '#64748b', size: 70, grid: { stroke: '#eef2f7', width: 1 }, ticks: { show: false },
          values: (u, splits, axis, space, incr) => splits.map((v) => tick(v, incr)) },
      ],
      series: [
        { value: (u, t) => (t == null ? NA : fmt.minute(t)) },
        ...spec.series.map((s, i) => ({
          label: s.label,
          stroke: s.color,
          width: s.width != null ? s.width : 2,
          fill: s.fill,
          dash: s.dash,
          points: { show: false },
          paths: s.bars ? uPlot.paths.bars({ size: [0.8, 60], gap: 1 }) : undefined,
          value: (u, v, si, di) => (spec.legend ? spec.legend(v, i, di) : (v == null ? NA : fmt.num(v, 1))),
        })),
      ],
      hooks: {
        setSelect: [(u) => {
          if (u.select.width < 8) return;
          const a = u.posToVal(u.select.left, 'x');
          const b = u.posToVal(u.select.left + u.select.width, 'x');
          u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          (spec.onSelect || selectRange)(a, b, u);
        }],
        // Away from the chart, the legend shows the newest bucket instead of dashes.
        setCursor: [(u) => { if (u.cursor.idx == null) showLast(u); }],
        setData: [(u) => { if (u.cursor.idx == null) showLast(u); }],
      },
    };
    charts.set(id, { key: spec.key, u: new uPlot(opts, data, box) });
    showLast(charts.get(id).u);
  }

  function showLast(u) {
    const n = u.data[0].length;
    if (n > 0) u.setLegend({ idx: n - 1 }, false);
  }

  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      for (const [id, { u }] of charts) {
        const box = document.getElementById(id);
        if (box) u.setSize({ width: box.clientWidth, height: CHART_HEIGHT });
      }
    }, 120);
  });

  const alpha = (hex, a) => hex + Math.round(a * 255).toString(16).padStart(2, '0');

  function requestsChart(s) {
    drawChart('chart-requests', {
      key: 'requests',
      series: [{ label: 'requests/min', color: COLORS.blue, fill: alpha(COLORS.blue, 0.12) }],
      legend: (v) => fmt.num(v, 1),
    }, [s.t, s.requests_per_min]);
  }

  function bandwidthChart(s, p95) {
    const series = [{ label: 'Mbit/s', color: COLORS.teal, fill: alpha(COLORS.teal, 0.12) }];
    const data = [s.t, s.mbit_per_s];
    if (p95) {
      series.push({ label: `p95 ${p95.month} so far`, color: COLORS.red, width: 2, dash: [8, 5] });
      data.push(s.t.map(() => p95.p95_mbit_per_s));
    }
    drawChart('chart-bandwidth', { key: `bandwidth-${series.length}`, series, legend: (v) => fmt.mbps(v) }, data);
  }

  /** Stacked bars: drawn as cumulative sums, tallest first; the legend shows each class. */
  function statusChart(s) {
    const order = [1, 2, 3, 4, 0]; // stack bottom → top: 2xx 3xx 4xx 5xx 1xx
    const raw = ['status_1xx', 'status_2xx', 'status_3xx', 'status_4xx', 'status_5xx'].map((k) => s[k]);
    const cumulative = [];
    let running = s.t.map(() => 0);
    for (const cls of order) {
      running = running.map((v, i) => v + raw[cls][i]);
      cumulative.push({ cls, values: running.map((v) => (v === 0 ? null : v)) });
    }
    cumulative.reverse(); // draw the full stack first so lower layers paint over it
    drawChart('chart-status', {
      key: 'status',
      series: cumulative.map(({ cls }) => ({
        label: `${cls + 1}xx`, color: COLORS.status[cls], fill: alpha(COLORS.status[cls], 0.85), bars: true, width: 0,
      })),
      legend: (v, i, di) => (di == null ? NA : fmt.num(raw[cumulative[i].cls][di], 0)),
    }, [s.t, ...cumulative.map((c) => c.values)]);
  }

  function cacheChart(s) {
    drawChart('chart-cache', {
      key: 'cache',
      series: [{ label: 'hit ratio', color: COLORS.green, fill: alpha(COLORS.green, 0.1) }],
      yMax: 100,
      ySuffix: '%',
      legend: (v) => (v == null ? NA : fmt.num(v, 1) + '%'),
    }, [s.t, s.cache_hit_ratio.map((v) => (v == null ? null : v * 100))]);
  }

  function latencyChart(s) {
    drawChart('chart-latency', {
      key: 'latency',
      series: [
        { label: 'p50', color: COLORS.green },
        { label: 'p95', color: COLORS.amber },
        { label: 'p99', color: COLORS.red },
      ],
      ySuffix: ' ms',
      legend: (v) => fmt.ms(v),
    }, [s.t, s.request_time_p50_ms, s.request_time_p95_ms, s.request_time_p99_ms]);
  }

  function monthChart(bw) {
    const s = bw.series;
    drawChart('chart-month', {
      key: 'month',
      series: [
        { label: 'Mbit/s', color: COLORS.blue, fill: alpha(COLORS.blue, 0.1), width: 1 },
        { label: `p95 ${bw.month}`, color: COLORS.red, width: 2, dash: [8, 5] },
      ],
      legend: (v) => fmt.mbps(v),
      onSelect: (a, b, u) => u.setScale('x', { min: a, max: b }), // double-click zooms out
    }, [s.t, s.mbit_per_s, s.t.map(() => bw.p95_mbit_per_s)]);
  }

  /** Horizontal bars; items: {label, value, text, href?, title?}. */
  function drawBars(container, items, color, emptyText) {
    if (!container) return;
    if (!items.length) {
      container.replaceChildren(empty(emptyText || 'No data in this range.'));
      return;
    }
    const max = Math.max(...items.map((it) => it.value), 0) || 1;
    container.replaceChildren(...items.map((it) => {
      const fill = el('div', { class: 'bar-fill' });
      fill.style.width = `${Math.max(0.5, (it.value / max) * 100)}%`;
      fill.style.background = color;
      const label = it.href
        ? el('a', { class: 'bar-label', href: it.href, title: it.title || it.label, text: it.label })
        : el('span', { class: 'bar-label', title: it.title || it.label, text: it.label });
      return el('div', { class: 'bar-row', dataset: { label: it.label } },
        label, el('div', { class: 'bar-track' }, fill), el('span', { class: 'bar-value', text: it.text }));
    }));
  }

  const SVG = 'http://www.w3.org/2000/svg';

  function sparkline(values) {
    const w = 120, h = 28, n = values.length;
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
    svg.setAttribute('width', w);
    svg.setAttribute('height', h);
    svg.setAttribute('class', 'spark');
    if (n < 2) return svg;
    const max = Math.max(...values, 1);
    const pts = values.map((v, i) => [((i / (n - 1)) * w).toFixed(1), (h - 2 - (v / max) * (h - 4)).toFixed(1)]);
    const area = document.createElementNS(SVG, 'path');
    area.setAttribute('d', `M0,${h} L${pts.map((p) => p.join(',')).join(' L')} L${w},${h} Z`);
    area.setAttribute('class', 'spark-area');
    const line = document.createElementNS(SVG, 'polyline');
    line.setAttribute('points', pts.map((p) => p.join(',')).join(' '));
    line.setAttribute('class', 'spark-line');
    svg.append(area, line);
    return svg;
  }

  // ---------------------------------------------------------------- shared panels

  function domainHref(domain) { return withRange(`/domains/${encodeURIComponent(domain)}`); }

  function drawAlerts(list, alerts, withDomain) {
    if (!list) return;
    if (!alerts.length) {
      list.replaceChildren(el('li', { class: 'empty', text: 'No alerts in this range.' }));
      return;
    }
    list.replaceChildren(...alerts.map((a) => {
      const open = a.resolved == null;
      return el('li', { class: `alert ${open ? 'open' : 'resolved'}` },
        el('div', { class: 'alert-head' },
          el('span', { class: 'alert-kind', text: a.kind.replace(/_/g, ' ') }),
          withDomain ? el('a', { class: 'alert-domain', href: domainHref(a.domain), text: a.domain }) : null,
          el('span', { class: 'alert-state', text: open ? 'open' : 'resolved' })),
        el('div', { class: 'alert-when',
          text: `${fmt.minute(a.opened)}${open ? '' : ' → ' + fmt.clock(a.resolved)} · observed ${fmt.num(a.observed, 2)} vs ${fmt.num(a.baseline, 2)}` }),
        a.detail ? el('div', { class: 'alert-detail', text: a.detail }) : null);
    }));
  }

  function drawRejects(data) {
    drawBars($('#rejects-bars'), data.reasons.map((r) => ({
      label: r.reason, value: r.count, text: fmt.num(r.count, 0),
    })), COLORS.amber, 'No rejects in this range.');
    const list = $('#rejects-samples');
    if (!list) return;
    list.replaceChildren(...data.samples.map((s) => el('li', { class: 'sample' },
      el('div', { class: 'sample-meta' },
        el('span', { class: 'tag', text: s.reason }),
        ` ${s.source} · partition ${s.partition} · offset ${s.offset} · ${fmt.minute(s.epoch)}`),
      el('div', { class: 'sample-detail', text: s.detail }),
      el('code', { class: 'sample-text', text: s.sample }))));
  }

  // ---------------------------------------------------------------- pages

  const table = { key: 'requests_per_min', dir: -1, rows: [] };

  function setupSortableTable() {
    for (const th of $$('#domains th[data-key]')) {
      th.tabIndex = 0;
      const sort = () => {
        if (table.key === th.dataset.key) table.dir = -table.dir;
        else { table.key = th.dataset.key; table.dir = th.dataset.type === 'text' ? 1 : -1; }
        drawDomainTable();
      };
      th.addEventListener('click', sort);
      th.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); sort(); } });
    }
  }

  function drawDomainTable() {
    const { key, dir } = table;
    const rows = [...table.rows].sort((a, b) => {
      const x = a[key], y = b[key];
      if (x == null && y == null) return a.domain.localeCompare(b.domain);
      if (x == null) return 1;
      if (y == null) return -1;
      const c = typeof x === 'string' ? x.localeCompare(y) : x - y;
      return c !== 0 ? c * dir : a.domain.localeCompare(b.domain);
    });
    for (const th of $$('#domains th[data-key]')) {
      th.setAttribute('aria-sort', th.dataset.key === key ? (dir > 0 ? 'ascending' : 'descending') : 'none');
    }
    $('#domains tbody').replaceChildren(...rows.map((d) => el('tr', { dataset: { domain: d.domain } },
      el('td', { class: 'domain' }, el('a', { href: domainHref(d.domain), text: d.domain })),
      el('td', { 'data-col': 'account', text: d.account ?? NA }),
      el('td', { class: 'num', 'data-col': 'rpm', text: fmt.num(d.requests_per_min, 1) }),
      el('td', { class: 'num', 'data-col': 'mbps', text: fmt.mbps(d.mbit_per_s) }),
      el('td', { class: 'num', 'data-col': 'rate4', text: fmt.pct(d.rate_4xx) }),
      el('td', { class: 'num', 'data-col': 'rate5', text: fmt.pct(d.rate_5xx) }),
      el('td', { class: 'num', 'data-col': 'hit', text: fmt.pct(d.cache_hit_ratio) }),
      el('td', { class: 'spark-col' }, sparkline(d.spark)))));
    $('#domains-empty').hidden = rows.length > 0;
  }

  async function getJson(url) {
    const response = await fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    let data = null;
    try { data = await response.json(); } catch (_) { /* not JSON */ }
    if (!response.ok) throw new Error((data && data.error) || `${response.status} ${response.statusText}`);
    return data;
  }

  async function loadOverview() {
    const [domains, series, alerts, rejects] = await Promise.all([
      getJson(api('/api/domains')), getJson(api('/api/series')),
      getJson(api('/api/alerts')), getJson(api('/api/rejects')),
    ]);
    showRange(domains.range);
    const t = domains.totals;
    setStat('rpm', fmt.num(t.requests_per_min, 1));
    setStat('mbps', fmt.mbps(t.mbit_per_s));
    setStat('rate4', fmt.pct(t.rate_4xx));
    setStat('rate5', fmt.pct(t.rate_5xx));
    setStat('hit', fmt.pct(t.cache_hit_ratio));
    setStat('domains', fmt.num(domains.domains.filter((d) => d.requests > 0).length, 0));
    table.rows = domains.domains;
    drawDomainTable();
    const top = [...domains.domains].sort((a, b) => b.mbit_per_s - a.mbit_per_s).slice(0, 12);
    drawBars($('#bars-domains'), top.map((d) => ({
      label: d.domain, value: d.mbit_per_s, text: `${fmt.mbps(d.mbit_per_s)} Mbit/s`, href: domainHref(d.domain),
    })), COLORS.teal);
    requestsChart(series.series);
    bandwidthChart(series.series, null);
    statusChart(series.series);
    drawAlerts($('#alerts'), alerts.alerts, true);
    drawRejects(rejects);
  }

  async function loadDomain() {
    const d = pageDomain;
    const [series, top, alerts, rejects] = await Promise.all([
      getJson(api('/api/series', { domain: d })), getJson(api('/api/top_clients', { domain: d })),
      getJson(api('/api/alerts', { domain: d })), getJson(api('/api/rejects', { domain: d })),
    ]);
    showRange(series.range);
    const s = series.summary;
    setStat('rpm', fmt.num(s.requests_per_min, 1));
    setStat('mbps', fmt.mbps(s.mbit_per_s));
    setStat('peak', fmt.mbps(s.peak_mbit_per_s));
    setStat('p95', fmt.mbps(series.p95_month_to_date?.p95_mbit_per_s));
    setStat('rate4', fmt.pct(s.rate_4xx));
    setStat('rate5', fmt.pct(s.rate_5xx));
    setStat('hit', fmt.pct(s.cache_hit_ratio));
    setStat('lat95', fmt.ms(s.request_time_p95_ms));
    requestsChart(series.series);
    bandwidthChart(series.series, series.p95_month_to_date);
    statusChart(series.series);
    cacheChart(series.series);
    latencyChart(series.series);
    const hint = $('#top-hint');
    if (hint) {
      hint.textContent = top.window_start == null ? 'no ranking in this range'
        : `${top.window_secs} s window from ${fmt.minute(top.window_start)}`;
    }
    drawBars($('#bars-clients'), top.clients.map((c) => ({
      label: c.client_ip, value: c.requests, text: `${fmt.num(c.requests, 0)} req · ${fmt.bytes(c.bytes)}`,
    })), COLORS.violet, 'No top-client ranking in this range.');
    drawAlerts($('#alerts'), alerts.alerts, false);
    drawRejects(rejects);
  }

  function billingMonth() {
    const month = new URLSearchParams(location.search).get('month');
    return month && /^\d{4}-\d{2}$/.test(month) ? month : null;
  }

  async function loadBilling() {
    const month = billingMonth();
    const bills = await getJson(`/api/billing${month ? `?month=${month}` : ''}`);
    body.dataset.month = bills.month;
    const form = $('#month-form');
    if (form && document.activeElement?.form !== form) form.elements.month.value = bills.month;
    $('#csv-domains').href = `/api/billing.csv?month=${bills.month}&by=domain`;
    $('#csv-accounts').href = `/api/billing.csv?month=${bills.month}&by=account`;
    const accountName = (b) => b.name ?? '(no account)';
    setStat('traffic', fmt.num(bills.domains.reduce((sum, b) => sum + b.traffic_gb, 0), 3));
    setStat('accounts', fmt.num(bills.accounts.filter((b) => b.name != null).length, 0));
    setStat('domains', fmt.num(bills.domains.length, 0));
    setStat('intervals', `${fmt.num(bills.intervals, 0)} (drop ${fmt.num(Math.floor(bills.intervals / 20), 0)})`);
    drawBars($('#bars-accounts'), bills.accounts.map((b) => ({
      label: accountName(b), value: b.p95_mbit_per_s, text: `${fmt.mbps(b.p95_mbit_per_s)} Mbit/s`,
    })), COLORS.blue, 'No bandwidth samples this month.');
    drawBars($('#bars-domains'), bills.domains.slice(0, 15).map((b) => ({
      label: b.name, value: b.p95_mbit_per_s, text: `${fmt.mbps(b.p95_mbit_per_s)} Mbit/s`, href: `/domains/${encodeURIComponent(b.name)}`,
    })), COLORS.teal, 'No bandwidth samples this month.');
    $('#bill-accounts tbody').replaceChildren(...bills.accounts.map((b) => el('tr', { dataset: { account: accountName(b) } },
      el('td', { class: b.name == null ? 'muted' : null, text: accountName(b) }),
      el('td', { class: 'wrap', text: (b.domains || []).join(', ') }),
      el('td', { class: 'num', 'data-col': 'p95', text: fmt.mbps(b.p95_mbit_per_s) }),
      el('td', { class: 'num', 'data-col': 'max', text: fmt.mbps(b.max_bps / 1e6) }),
      el('td', { class: 'num', 'data-col': 'gb', text: fmt.num(b.traffic_gb, 3) }),
      el('td', { class: 'num', 'data-col': 'samples', text: fmt.num(b.samples, 0) }))));
    fillSelection(bills);
    await loadMonthChart(bills.month);
    $('#bill-domains tbody').replaceChildren(...bills.domains.map((b) => el('tr', { dataset: { domain: b.name } },
      el('td', { class: 'domain' }, el('a', { href: `/domains/${encodeURIComponent(b.name)}`, text: b.name })),
      el('td', { text: b.account ?? NA }),
      el('td', { class: 'num', 'data-col': 'p95', text: fmt.mbps(b.p95_mbit_per_s) }),
      el('td', { class: 'num', 'data-col': 'max', text: fmt.mbps(b.max_bps / 1e6) }),
      el('td', { class: 'num', 'data-col': 'gb', text: fmt.num(b.traffic_gb, 3) }),
      el('td', { class: 'num', 'data-col': 'samples', text: fmt.num(b.samples, 0) }))));
  }

  /** The month chart's selection: '' (all traffic), 'a:NAME' or 'd:NAME'. */
  function fillSelection(bills) {
    const select = $('#bw-select');
    const current = select.value;
    const options = [el('option', { value: '', text: 'all traffic' })];
    for (const b of bills.accounts) if (b.name != null) options.push(el('option', { value: `a:${b.name}`, text: `account ${b.name}` }));
    for (const b of bills.domains) options.push(el('option', { value: `d:${b.name}`, text: b.name }));
    select.replaceChildren(...options);
    select.value = [...select.options].some((o) => o.value === current) ? current : '';
  }

  async function loadMonthChart(month) {
    const pick = $('#bw-select').value;
    const q = new URLSearchParams({ month });
    if (pick.startsWith('a:')) q.set('account', pick.slice(2));
    if (pick.startsWith('d:')) q.set('domain', pick.slice(2));
    const bw = await getJson(`/api/bandwidth?${q}`);
    monthChart(bw);
    $('#bw-p95').textContent = `p95 ${fmt.mbps(bw.p95_mbit_per_s)} Mbit/s over ${fmt.num(bw.intervals, 0)} intervals`;
  }

  function setupBilling() {
    $('#bw-select').addEventListener('change', () => refresh(true));
    const form = $('#month-form');
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const q = new URLSearchParams(location.search);
      q.set('month', form.elements.month.value);
      history.pushState(null, '', `${location.pathname}?${q}`);
      refresh(true);
    });
    window.addEventListener('popstate', () => refresh(true));
  }

  // ---------------------------------------------------------------- refresh and live updates

  const loaders = { overview: loadOverview, domain: loadDomain, billing: loadBilling };
  let running = false, pending = false, lastLoad = 0, loads = 0, timer = null;

  /** Long ranges are costly to recompute: refresh them at most every 10 s (≤ 1 day) or 60 s. */
  function minGapMs() {
    if (page === 'billing') return 5000;
    const secs = rangeSecsGuess();
    return secs <= 21600 ? 0 : secs <= 86400 ? 10000 : 60000;
  }

  async function refresh(force) {
    if (running) { pending = true; return; }
    const wait = force ? 0 : lastLoad + minGapMs() - Date.now();
    if (wait > 0) {
      if (!timer) timer = setTimeout(() => { timer = null; refresh(false); }, wait);
      return;
    }
    running = true;
    try {
      await loaders[page]();
      showError(null);
      lastLoad = Date.now();
      body.dataset.loaded = String(++loads);
      const text = $('#live-text');
      if (text) text.textContent = `updated ${new Date().toISOString().slice(11, 19)}`;
    } catch (err) {
      showError(`Could not load data: ${err.message}`);
    } finally {
      running = false;
      if (pending) { pending = false; refresh(false); }
    }
  }

  function startLive() {
    const indicator = $('#live');
    const events = new EventSource('/api/events');
    // On every (re)connection fetch again: rows may have arrived before the stream was open.
    events.addEventListener('hello', () => {
      indicator.classList.add('on');
      indicator.classList.remove('off');
      refresh(false);
    });
    events.addEventListener('change', () => refresh(false));
    events.addEventListener('error', () => { indicator.classList.remove('on'); indicator.classList.add('off'); });
    // A preset window slides with the clock even when no rows arrive.
    setInterval(() => { if (rangeParams().get('range')) refresh(false); }, 60000);
  }

  function start() {
    if (page === 'billing') setupBilling();
    else setupRangePicker();
    if (page === 'overview') setupSortableTable();
    refresh(true);
    startLive();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
