// The endpoint's safe rollout: its newest progressive rollout (steps, the
// current step's figures against its gates, pause/resume/abort) and the
// shadow comparison of mirrored (and replayed) answers, with the traffic
// history. Refreshed every 2 seconds.

import {api} from '../api.js';
import {h, replace, errorBox, timeEl, shortDigest} from '../dom.js';

const pct = (v) => {
  const s = (v * 100).toFixed(2).replace(/\.?0+$/, '');
  return `${s} %`;
};
const ms = (v) => (v == null ? '—' : `${Number(v).toFixed(1)} ms`);
const num = (v) => (v == null ? '—' : Number(v).toPrecision(3).replace(/\.?0+(e|$)/, '$1'));

const STATE_CLASS = {Running: 'info', Paused: 'warn', Succeeded: 'ok', RolledBack: 'bad', Aborted: 'warn'};

export async function render(panel, ctx, view) {
  const rolloutSlot = h('div', {id: 'rollout', 'aria-live': 'polite'});
  const compareSlot = h('div', {id: 'comparison'});
  const historySlot = h('div', {id: 'traffic-history'});
  replace(panel, rolloutSlot, compareSlot, historySlot);
  const name = ctx.ep.name;

  let shown = '';
  const refresh = async () => {
    const [list, cmp, hist] = await Promise.all([
      api.rollouts(name, {signal: view.signal}),
      api.compare(name, {signal: view.signal}),
      api.trafficHistory(name, 20, {signal: view.signal}),
    ]);
    const newest = list.length ? list[list.length - 1] : null;
    const ro = newest ? await api.rollout(name, newest.name, {signal: view.signal}) : null;
    const key = JSON.stringify([ro, cmp, hist]);
    if (key === shown) return;
    shown = key;
    replace(rolloutSlot, rolloutCard(ro, ctx, view, refresh));
    replace(compareSlot, comparisonCard(cmp));
    replace(historySlot, historyCard(hist));
  };
  try {
    await refresh();
  } catch (err) {
    if (err.name === 'AbortError' || err.unauthorized) throw err;
    replace(panel, errorBox(err, 'Could not load the rollout'));
    return;
  }
  view.every(2000, refresh);
}

// ---- the rollout --------------------------------------------------------------

function rolloutCard(ro, ctx, view, refresh) {
  if (!ro) {
    return h('div', {class: 'card'},
      h('div', {class: 'card-head'}, h('h2', null, 'Rollout')),
      h('p', null, 'No rollout yet. Shift traffic to a deployment in steps, judged by gates and rolled back automatically:'),
      h('pre', {class: 'snippet'}, `plumbline online-deployment rollout --name green --endpoint-name ${ctx.ep.name} --shadow 10 --wait`));
  }
  const active = ro.state === 'Running' || ro.state === 'Paused';
  const status = h('div', {class: 'alert', role: 'status', 'aria-live': 'polite'});
  const act = (action, label, cls, confirmText) => {
    const b = h('button', {type: 'button', class: 'btn ' + cls, id: 'rollout-' + action}, label);
    b.addEventListener('click', async () => {
      if (confirmText && !window.confirm(confirmText)) return;
      b.disabled = true;
      try {
        const r = await api.rolloutAction(ctx.ep.name, ro.name, action, {signal: view.signal});
        status.className = 'alert alert-ok';
        status.textContent = `Rollout ${r.id}: ${r.state}.`;
        if (action === 'abort') ctx.setEndpoint(await api.endpoint(ctx.ep.name, {signal: view.signal}));
        await refresh();
      } catch (err) {
        if (err.name === 'AbortError' || err.unauthorized) return;
        status.className = 'alert alert-error';
        replace(status, h('strong', null, 'Not done: '), err.message);
      } finally {
        b.disabled = false;
      }
    });
    return b;
  };
  const buttons = active ? h('div', {class: 'btn-row'},
    ro.state === 'Running' ? act('pause', 'Pause', '', '') : act('resume', 'Resume', 'btn-primary', ''),
    act('abort', 'Abort', 'btn-danger', `Abort the rollout of ${ro.name}? Traffic returns to ${split(ro.baseline)}.`)) : null;

  return h('article', {class: 'card rollout', 'aria-label': 'Rollout of ' + ro.name},
    h('div', {class: 'card-head'},
      h('h2', null, `Rollout ${ro.id} of ${ro.name} `, h('span', {class: 'badge ' + (STATE_CLASS[ro.state] || '')}, ro.state)),
      h('span', {class: 'muted small'}, 'started ', timeEl(ro.created_at))),
    ro.reason ? h('div', {class: 'alert ' + (ro.state === 'RolledBack' ? 'alert-error' : 'alert-info'), id: 'rollout-reason', role: 'note'}, ro.reason) : null,
    stepsEl(ro),
    active && ro.figures ? gatesTable(ro) : null,
    h('p', {class: 'muted small'}, `Each step lasts ${ro.bake_time} s at least and needs ${ro.min_requests} requests before its gates are judged; `,
      `a breach returns the traffic to ${split(ro.baseline)}.`),
    buttons, status);
}

function split(m) {
  return Object.entries(m || {}).filter(([, v]) => v > 0).sort().map(([k, v]) => `${k}=${v}`).join(' ') || 'none';
}

function stepsEl(ro) {
  return h('ol', {class: 'steps', 'aria-label': 'Steps'}, ro.steps.map((s, i) => {
    let state = 'pending';
    if (i < ro.step || (i === ro.step && ro.state === 'Succeeded')) state = 'done';
    else if (i === ro.step) state = ro.state === 'RolledBack' || ro.state === 'Aborted' ? 'failed' : 'current';
    return h('li', {class: 'step ' + state, 'aria-current': state === 'current' ? 'step' : null},
      h('span', {class: 'step-pct'}, `${s.kind === 'shadow' ? 'shadow ' : ''}${s.percent} %`),
      h('span', {class: 'step-state'}, {done: 'passed', current: ro.state === 'Paused' ? 'paused' : 'running', failed: ro.state, pending: ''}[state]));
  }));
}

function gatesTable(ro) {
  const f = ro.figures;
  const g = ro.gates;
  const shadow = ro.step_kind === 'shadow';
  const row = (gate, limit, value, ok, pending = 'not judged yet') => h('tr', {class: ok === false ? 'breach' : null},
    h('th', {scope: 'row'}, gate), h('td', {class: 'num'}, limit), h('td', {class: 'num'}, value),
    h('td', null, ok == null ? h('span', {class: 'muted'}, pending) : (ok ? '✓' : '✗ breached')));
  const enough = f.requests >= ro.min_requests;
  const judged = (ok) => (enough ? ok : null);
  const rows = [
    row(shadow ? 'Mirrored requests' : 'Requests', `≥ ${ro.min_requests}`, String(f.requests), enough ? true : null, 'waiting'),
    row('Error rate', `≤ ${pct(g.max_error_rate)}`, `${pct(f.error_rate)} (${f.errors})`, judged(f.error_rate <= g.max_error_rate)),
    row('Contract violations', `≤ ${pct(g.max_contract_violation_rate)}`, String(f.contract_violations),
      judged(f.requests === 0 || f.contract_violations / f.requests <= g.max_contract_violation_rate)),
  ];
  if (g.max_latency_ratio > 0) {
    rows.push(row('p99 latency', `≤ ${g.max_latency_ratio}× live`,
      f.latency_ratio == null ? ms(f.p99_ms) : `${ms(f.p99_ms)} (${f.latency_ratio.toFixed(2)}× ${ms(f.baseline_p99_ms)})`,
      f.latency_ratio == null ? null : judged(f.latency_ratio <= g.max_latency_ratio)));
  }
  if (shadow && g.min_agreement > 0) {
    rows.push(row('Agreement', `≥ ${pct(g.min_agreement)}`, f.agreement == null ? '—' : `${pct(f.agreement)} of ${f.predictions}`,
      f.agreement == null ? null : judged(f.agreement >= g.min_agreement)));
  }
  return h('div', null,
    h('h3', null, `Step ${ro.step + 1} of ${ro.steps.length}: ${shadow ? 'shadow ' : ''}${ro.percent} %`,
      h('span', {class: 'muted small'}, ' since ', timeEl(ro.step_started_at))),
    h('table', {class: 'table gates', id: 'rollout-gates'},
      h('thead', null, h('tr', null, h('th', {scope: 'col'}, 'Gate'), h('th', {scope: 'col', class: 'num'}, 'Limit'),
        h('th', {scope: 'col', class: 'num'}, 'Now'), h('th', {scope: 'col'}, ''))),
      h('tbody', null, rows)),
    f.waiting ? h('p', {class: 'muted', id: 'rollout-waiting'}, 'Waiting for ', f.waiting, '.') : null,
    f.breach ? h('div', {class: 'alert alert-error'}, 'Breach: ', f.breach) : null);
}

// ---- the comparison --------------------------------------------------------------

function comparisonCard(c) {
  const head = h('div', {class: 'card-head'}, h('h2', null, 'Shadow comparison'),
    h('span', {class: 'muted small'}, c.since ? ['since ', timeEl(c.since)] : ''));
  if (!c.comparisons.length) {
    return h('div', {class: 'card'}, head,
      h('p', null, 'Nothing compared yet. Mirror a share of live traffic to a deployment in the traffic editor (or roll out with a shadow step): ',
        'its answers are compared with the live ones, prediction by prediction.'));
  }
  return h('div', {class: 'card'}, head,
    c.comparisons.map((p) => h('section', {class: 'comparison', 'aria-label': `${p.kind} ${p.live} to ${p.shadow}`},
      h('h3', null, `${p.kind === 'replay' ? 'Replay' : 'Mirror'}: ${p.live} → ${p.shadow}`),
      h('dl', {class: 'kv'},
        h('dt', null, 'Agreement'), h('dd', {class: 'agreement'}, h('b', null, pct(p.agreement)), ` of ${p.predictions} predictions (${p.pairs} pairs, ${p.incomparable} incomparable)`),
        p.deltas ? [h('dt', null, '|Δ| of numbers'), h('dd', null, `mean ${num(p.delta_mean)} · p50 ${num(p.delta_p50)} · p99 ${num(p.delta_p99)} · max ${num(p.delta_max)}`)] : null,
        h('dt', null, 'Latency p50 / p99'), h('dd', null, `live ${ms(p.live_p50_ms)} / ${ms(p.live_p99_ms)} · shadow ${ms(p.shadow_p50_ms)} / ${ms(p.shadow_p99_ms)}`),
        h('dt', null, 'Errors'), h('dd', null, `live ${p.live_errors} of ${p.live_requests} (${pct(p.live_error_rate)}) · shadow ${p.shadow_errors} of ${p.shadow_requests} (${pct(p.shadow_error_rate)})`)),
      p.classes ? flipMatrix(p.classes) : null)),
    c.diffs && c.diffs.length ? h('details', {class: 'diffs'},
      h('summary', null, `Sampled disagreements (${c.diffs.length})`),
      c.diffs.map((d) => h('div', {class: 'diff'},
        h('p', null, timeEl(d.time), ' ', h('code', null, d.request_id), ` ${d.live} → ${d.shadow}: `, h('b', null, d.diff)),
        h('pre', {class: 'body'}, `request: ${JSON.stringify(d.request)}\nlive:    ${JSON.stringify(d.live_answer)}\nshadow:  ${JSON.stringify(d.shadow_answer)}`)))) : null);
}

function flipMatrix(classes) {
  const rows = Object.keys(classes).sort();
  const cols = [...new Set(rows.flatMap((r) => Object.keys(classes[r])))].sort();
  return h('table', {class: 'table flips', 'aria-label': 'Class flips: rows live, columns shadow'},
    h('thead', null, h('tr', null, h('th', {scope: 'col'}, 'live ↓ / shadow →'), cols.map((c) => h('th', {scope: 'col', class: 'num'}, c)))),
    h('tbody', null, rows.map((r) => h('tr', null, h('th', {scope: 'row'}, r),
      cols.map((c) => h('td', {class: 'num' + (r !== c && classes[r][c] ? ' flip' : '')}, String(classes[r][c] || 0)))))));
}

// ---- history ------------------------------------------------------------------------

function historyCard(hist) {
  if (!hist.length) return null;
  return h('div', {class: 'card'},
    h('div', {class: 'card-head'}, h('h2', null, 'Traffic history')),
    h('div', {class: 'table-wrap'}, h('table', {class: 'table stack-sm', id: 'history'},
      h('thead', null, h('tr', null, h('th', {scope: 'col'}, 'When'), h('th', {scope: 'col'}, 'Serving'), h('th', {scope: 'col'}, 'Cause'))),
      h('tbody', null, hist.slice().reverse().map((c) => h('tr', null,
        h('td', null, timeEl(c.time)),
        h('td', null, c.entries.map((e) => h('div', null,
          h('b', null, e.deployment), ` ${e.traffic} %`, e.mirror ? ` (mirror ${e.mirror} %)` : '',
          e.model ? [' · ', h('code', null, e.model)] : null,
          e.model_digest ? [' ', h('code', {class: 'muted', title: e.model_digest}, shortDigest(e.model_digest))] : null))),
        h('td', null, c.cause)))))));
}
