// Metrics: requests per second, p50 and p99 latency and status codes per
// deployment, live. The page scrapes /metrics every 2 seconds and computes
// rates and quantiles between scrapes itself, as Prometheus would.

import {api} from '../api.js';
import {h, replace, errorBox, colorOf, dot} from '../dom.js';
import {parse, summarize, rate, bucketDelta, quantile} from '../prom.js';
import {lineChart} from '../chart.js';
import * as scaling from './scaling.js';

const POLL_MS = 2000;
// The charts show what the page has seen, from 30 seconds up to the last 3
// minutes.
const MIN_SPAN_S = 30;
const MAX_SPAN_S = 180;
const WINDOW = 5; // rates and quantiles over 5 scrapes (10 s)

export function fmtRate(v) {
  if (v === null || v === undefined) return '—';
  if (v === 0) return '0';
  if (v < 0.1) return v.toFixed(2);
  if (v < 10) return v.toFixed(1);
  return Math.round(v).toString();
}

export function fmtSeconds(v) {
  if (v === null || v === undefined) return '—';
  if (v === 0) return '0';
  if (v < 1) {
    const ms = v * 1000;
    return (ms < 10 ? ms.toFixed(1) : Math.round(ms).toString()) + ' ms';
  }
  return (v < 10 ? v.toFixed(2) : v.toFixed(1)) + ' s';
}

const CHARTS = [
  {id: 'rps', title: 'Requests per second', format: fmtRate, unit: ' req/s', floor: 1},
  {id: 'p50', title: 'Latency p50', format: fmtSeconds, unit: '', floor: 0.01},
  {id: 'p99', title: 'Latency p99', format: fmtSeconds, unit: '', floor: 0.01},
];

export async function render(panel, ctx, view) {
  const {ep} = ctx;
  const status = h('span', {class: 'muted small', id: 'metrics-status'}, 'Reading /metrics…');
  const problem = h('div');
  const slots = {};
  const cards = CHARTS.map((c) => {
    slots[c.id] = {now: h('div', {class: 'now'}), chart: h('div')};
    return h('div', {class: 'card chart-card', id: 'chart-' + c.id},
      h('h3', null, c.title), slots[c.id].now, slots[c.id].chart);
  });
  const codes = h('div', {id: 'metrics-codes'});
  const autoscaling = scaling.section(ctx, view, {minSpan: MIN_SPAN_S, maxSpan: MAX_SPAN_S, window: WINDOW});
  replace(panel,
    h('div', {class: 'page-head'},
      h('p', {class: 'muted small'}, `Live from the gateway: every ${POLL_MS / 1000} s, rates and latency quantiles over the last ${(POLL_MS * WINDOW) / 1000} s.`),
      status),
    problem,
    h('div', {class: 'grid-charts'}, cards,
      h('div', {class: 'card chart-card codes-card'}, h('h3', null, 'Status codes'),
        h('p', {class: 'now'}, 'Since the server started; model codes in brackets.'), codes)),
    autoscaling.el);

  const history = []; // recent scrapes: {t, deps}
  const opened = Date.now();
  const points = {rps: {}, p50: {}, p99: {}}; // id → deployment → [[t, v]…]
  const depNames = new Set(ctx.deps.map((d) => d.name));

  const tick = async () => {
    let text;
    try {
      text = await api.metrics({signal: view.signal});
    } catch (err) {
      if (err.name === 'AbortError' || err.unauthorized) throw err;
      replace(problem, errorBox(err, 'Could not read /metrics'));
      return;
    }
    replace(problem);
    const t = Date.now();
    const deps = summarize(parse(text), ep.name);
    for (const n of Object.keys(deps)) depNames.add(n);
    history.push({t, deps});
    if (history.length > WINDOW + 1) history.shift();
    if (history.length >= 2) {
      const old = history[0];
      const dt = (t - old.t) / 1000;
      for (const n of depNames) {
        const a = old.deps[n] || {requests: 0, buckets: []};
        const b = deps[n] || {requests: 0, buckets: []};
        const d = bucketDelta(a.buckets, b.buckets);
        add(points.rps, n, t, rate(a.requests, b.requests, dt));
        add(points.p50, n, t, quantile(0.5, d));
        add(points.p99, n, t, quantile(0.99, d));
      }
    }
    for (const m of Object.values(points)) {
      for (const list of Object.values(m)) while (list.length && list[0][0] < t - MAX_SPAN_S * 1000) list.shift();
    }
    draw(t, deps);
    await autoscaling.update(t, history, deps);
    status.textContent = `Updated ${new Date(t).toLocaleTimeString()}`;
  };

  const draw = (now, latest) => {
    const names = [...depNames].sort();
    const span = Math.min(MAX_SPAN_S, Math.max(MIN_SPAN_S, Math.ceil((now - opened) / 10000) * 10));
    for (const c of CHARTS) {
      const series = names.map((n) => ({name: n, color: colorOf(n, names), points: points[c.id][n] || []}));
      const current = series.map((se) => {
        const last = se.points[se.points.length - 1];
        return h('span', null, dot(se.color), ' ', se.name, ' ', h('b', null, last ? c.format(last[1]) + (last[1] === null ? '' : c.unit) : '—'));
      });
      replace(slots[c.id].now, history.length < 2 ? h('span', null, 'collecting…') : current);
      const label = `${c.title}: ` + series.map((se) => {
        const last = se.points[se.points.length - 1];
        return `${se.name} ${last ? c.format(last[1]) : 'no data'}`;
      }).join(', ');
      replace(slots[c.id].chart, lineChart({series, now, span, format: c.format, floor: c.floor, label}));
    }
    replace(codes, names.map((n) => codesRow(n, colorOf(n, names), latest[n])));
  };

  await tick();
  view.every(POLL_MS, tick);
}

function add(m, name, t, v) {
  (m[name] ||= []).push([t, v]);
}

const CLASS_COLOR = {2: '#24995a', 3: '#2f6fdb', 4: '#d4a514', 5: '#d04a3c'};

function codesRow(name, color, d) {
  const entries = Object.entries((d && d.codes) || {}).filter(([, n]) => n > 0).sort((a, b) => a[0].localeCompare(b[0]));
  const total = entries.reduce((acc, [, n]) => acc + n, 0);
  return h('div', {class: 'codes-row'},
    h('span', {class: 'dname'}, dot(color), name),
    h('div', null,
      total
        ? h('div', {class: 'cbar', 'aria-hidden': 'true'}, entries.map(([k, n]) => h('span', {class: 'seg',
          style: {'--w': (100 * n / total).toFixed(2) + '%', '--c': CLASS_COLOR[k[0]] || '#6b7585'}})))
        : null,
      h('div', {class: 'chips'}, total
        ? entries.map(([k, n]) => {
          const [code, model] = k.split('/');
          const label = model && model !== code ? `${code} (${model})` : code;
          return h('span', {class: 'chip c' + code[0]}, `${label} × ${n}`);
        })
        : h('span', {class: 'muted small'}, 'no requests yet'))),
    d ? h('div', {class: 'stats'},
      h('span', null, 'ready instances ', h('b', null, String(d.ready))),
      h('span', null, 'in flight ', h('b', null, String(d.inflight))),
      h('span', null, 'queued ', h('b', null, String(d.queue)))) : h('span'));
}
