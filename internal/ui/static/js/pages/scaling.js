// The Metrics tab's autoscaling part, for deployments with scale_settings
// type target_utilization: desired vs actual instances over time, the time
// requests waited for capacity, cold starts, and the autoscaler's recent
// decisions with their reasons. Figures come from /metrics (the same scrape
// as the rest of the tab); the state and decisions from the API.

import {api} from '../api.js';
import {h, replace, colorOf, dot, timeEl} from '../dom.js';
import {bucketDelta, quantile} from '../prom.js';
import {lineChart} from '../chart.js';

// Events that say what the autoscaler did, and what the reconciler did
// for it.
const DECISIONS = new Set(['Scaled', 'Parked', 'Unparked', 'Prewarm']);
const SHOWN = 8;
const REFRESH_TICKS = 3; // state and decisions every third scrape

function fmtCount(v) {
  return v === null || v === undefined ? '—' : String(Math.round(v));
}

export function fmtWait(v) {
  if (v === null || v === undefined) return '—';
  if (v === 0) return '0';
  if (v < 1) return Math.round(v * 1000) + ' ms';
  return (v < 10 ? v.toFixed(2) : v.toFixed(1)) + ' s';
}

// coldSummary is what a deployment's cold starts were since the server
// started: how many, their mean and their median.
export function coldSummary(d) {
  if (!d || !(d.coldCount > 0)) return null;
  return {count: d.coldCount, mean: d.coldSum / d.coldCount, p50: quantile(0.5, d.coldBuckets)};
}

// section returns the autoscaling part of the Metrics tab: el to place in
// the page, and update(t, history, latest), called after every scrape.
export function section(ctx, view, {minSpan, maxSpan, window}) {
  const opened = Date.now();
  const autoscaled = () => ctx.deps.filter((d) => d.scale_status).map((d) => d.name);
  const status = h('div', {id: 'scale-status'});
  const instNow = h('div', {class: 'now'});
  const instChart = h('div');
  const waitNow = h('div', {class: 'now'});
  const waitChart = h('div');
  const cold = h('div', {id: 'cold-starts'});
  const decisions = h('ol', {class: 'decisions', id: 'scale-decisions'});
  const el = h('div', {id: 'autoscaling', hidden: true},
    h('h2', null, 'Autoscaling'),
    h('p', {class: 'muted small'}, 'Instances the autoscaler wants (dashed) and runs (solid), how long requests waited for an instance, and cold starts: from the first request that waited with no instance ready to the first ready instance.'),
    status,
    h('div', {class: 'grid-charts'},
      h('div', {class: 'card chart-card', id: 'chart-instances'}, h('h3', null, 'Instances: desired and actual'), instNow, instChart),
      h('div', {class: 'card chart-card', id: 'chart-wait'}, h('h3', null, 'Waiting for capacity (p99)'), waitNow, waitChart),
      h('div', {class: 'card chart-card', id: 'card-cold'}, h('h3', null, 'Cold starts'),
        h('p', {class: 'now'}, 'Since the server started.'), cold),
      h('div', {class: 'card chart-card', id: 'card-decisions'}, h('h3', null, 'Decisions'),
        h('p', {class: 'now'}, 'The newest first: the autoscaler\'s events with their reasons.'), decisions)));

  const points = {desired: {}, actual: {}, wait: {}};
  let ticks = 0;

  const refresh = async () => {
    try {
      const [deps, evs] = await Promise.all([
        api.deployments(ctx.ep.name, {signal: view.signal}),
        api.events(ctx.ep.name, 500, {signal: view.signal}),
      ]);
      ctx.deps = deps;
      drawStatus(deps);
      const mine = (evs || []).filter((e) => DECISIONS.has(e.reason)).reverse().slice(0, SHOWN);
      replace(decisions, mine.length
        ? mine.map((e) => h('li', null, timeEl(e.time), ' ', h('b', null, e.instance || e.deployment), ' ', e.message))
        : h('li', {class: 'muted'}, 'no decision yet'));
    } catch (err) {
      if (err.name === 'AbortError' || err.unauthorized) throw err;
      // The charts go on; the next refresh tries again.
    }
  };

  const drawStatus = (deps) => {
    const names = deps.map((d) => d.name);
    replace(status, deps.filter((d) => d.scale_status).map((d) => {
      const st = d.scale_status;
      return h('div', {class: 'stats scale-row', 'data-deployment': d.name},
        h('span', {class: 'dname'}, dot(colorOf(d.name, names)), d.name),
        h('span', null, 'ready ', h('b', null, `${st.ready_instances} of ${st.desired_instances}`), ' desired'),
        h('span', null, 'bounds ', h('b', null, `${st.min_instances}–${st.max_instances}`)),
        h('span', null, 'utilization ', h('b', null, `${Math.round(st.utilization_percentage)} %`)),
        st.panic_mode ? h('span', {class: 'chip c4'}, 'panic mode') : null,
        st.prewarm_until ? h('span', null, 'pre-warmed: ', h('b', null, String(st.prewarm_instances)), ' until ', timeEl(st.prewarm_until)) : null,
        st.last_decision ? h('span', {class: 'last-decision'}, st.last_decision) : null);
    }));
  };

  const update = async (t, history, latest) => {
    const names = new Set(autoscaled());
    for (const [n, d] of Object.entries(latest)) if (d.desired !== null) names.add(n);
    el.hidden = names.size === 0;
    if (el.hidden) return;
    if (ticks++ % REFRESH_TICKS === 0) await refresh();

    const sorted = [...names].sort();
    const all = ctx.deps.map((d) => d.name);
    const old = history.length >= 2 ? history[0] : null;
    for (const n of sorted) {
      const d = latest[n];
      add(points.desired, n, t, d ? d.desired : null);
      add(points.actual, n, t, d ? d.actual : null);
      if (old) {
        const a = old.deps[n] || {waitBuckets: []};
        add(points.wait, n, t, d ? quantile(0.99, bucketDelta(a.waitBuckets, d.waitBuckets)) : null);
      }
    }
    for (const m of Object.values(points)) {
      for (const list of Object.values(m)) while (list.length && list[0][0] < t - maxSpan * 1000) list.shift();
    }
    const span = Math.min(maxSpan, Math.max(minSpan, Math.ceil((t - opened) / 10000) * 10));
    const series = [];
    for (const n of sorted) {
      const color = colorOf(n, all.length ? all : sorted);
      series.push({name: n + ' desired', color, dashed: true, points: points.desired[n] || []});
      series.push({name: n + ' actual', color, points: points.actual[n] || []});
    }
    replace(instNow, sorted.map((n) => {
      const d = latest[n] || {};
      return h('span', null, dot(colorOf(n, all.length ? all : sorted)), ' ', n, ' ',
        h('b', null, `${fmtCount(d.actual)} / ${fmtCount(d.desired)}`), d.panic ? ' (panic)' : '');
    }));
    replace(instChart, lineChart({series, now: t, span, format: fmtCount, floor: 2,
      label: 'Instances: ' + sorted.map((n) => `${n} ${fmtCount((latest[n] || {}).actual)} running of ${fmtCount((latest[n] || {}).desired)} desired`).join(', ')}));

    const waitSeries = sorted.map((n) => ({name: n, color: colorOf(n, all.length ? all : sorted), points: points.wait[n] || []}));
    replace(waitNow, history.length < 2 ? h('span', null, 'collecting…') : waitSeries.map((se) => {
      const last = se.points[se.points.length - 1];
      return h('span', null, dot(se.color), ' ', se.name, ' ', h('b', null, last ? fmtWait(last[1]) : '—'));
    }));
    replace(waitChart, lineChart({series: waitSeries, now: t, span, format: fmtWait, floor: 0.01,
      label: `Waiting for capacity, p99 over the last ${window} scrapes`}));

    replace(cold, sorted.map((n) => {
      const c = coldSummary(latest[n]);
      return h('div', {class: 'stats', 'data-deployment': n},
        h('span', {class: 'dname'}, dot(colorOf(n, all.length ? all : sorted)), n),
        c && c.count === 1 ? [h('span', null, h('b', null, '1'), ' cold start'),
          h('span', null, 'took ', h('b', null, fmtWait(c.mean)))]
        // The median is estimated from the histogram's buckets; the mean is exact.
        : c ? [h('span', null, h('b', null, String(c.count)), ' cold starts'),
          h('span', null, 'median ≈ ', h('b', {class: 'cold-p50'}, fmtWait(c.p50))),
          h('span', null, 'mean ', h('b', null, fmtWait(c.mean)))]
          : h('span', {class: 'muted'}, 'none yet'));
    }));
  };

  return {el, update};
}

function add(m, name, t, v) {
  (m[name] ||= []).push([t, v]);
}
