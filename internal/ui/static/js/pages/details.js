// The endpoint's deployments (state, reason, instances with readiness,
// pinned model and code, runtime and environment), refreshed every 4
// seconds, and the traffic editor, which applies a new split live through
// PUT /api/v1/endpoints/{name}.

import {api, editableEndpoint} from '../api.js';
import {h, replace, stateBadge, digestEl, timeEl, colorOf, dot, trafficBar} from '../dom.js';

export async function render(panel, ctx, view) {
  const cards = h('div', {class: 'dep-grid'});
  const editorSlot = h('div');
  replace(panel, h('div', {class: 'cols'},
    h('div', null, h('h2', {class: 'visually-hidden'}, 'Deployments'), cards),
    editorSlot));

  let deps = ctx.deps;
  let editor = null;
  const names = () => deps.map((d) => d.name);

  const showCards = () => {
    if (!deps.length) {
      replace(cards, h('div', {class: 'card empty'},
        h('h3', null, 'No deployments yet'),
        h('p', null, 'Add one with:'),
        h('pre', {class: 'snippet'}, `plumbline online-deployment create -f deployment.yml --all-traffic`)));
      return;
    }
    replace(cards, deps.map((d) => deploymentCard(d, ctx.ep, names())));
  };
  const showEditor = () => {
    editor = trafficEditor(ctx, deps, view, showCards);
    replace(editorSlot, editor.el);
  };
  showCards();
  showEditor();

  // Redraw only what changed, so a refresh never takes the keyboard focus
  // away; the editor is rebuilt only for a new set of deployments, and
  // never while the user is editing it.
  let shown = JSON.stringify(deps);
  view.every(4000, async () => {
    const fresh = await api.deployments(ctx.ep.name, {signal: view.signal});
    const key = JSON.stringify(fresh);
    if (key === shown) return;
    shown = key;
    const changedSet = fresh.map((d) => d.name).join() !== names().join();
    deps = fresh;
    showCards();
    if (changedSet && !editor.dirty()) showEditor();
  });
}

// ---- deployment cards ----------------------------------------------------------

function parseModel(m) {
  if (!m) return null;
  if (typeof m === 'object') return {name: m.name, version: m.version, text: [m.name, m.version].filter(Boolean).join(':')};
  const match = /^azureml:([^:@]+)[:@](.+)$/.exec(m);
  if (match) return {name: match[1], version: match[2], text: `${match[1]}:${match[2]}`};
  return {text: String(m)};
}

function environmentText(env) {
  if (!env) return '';
  if (typeof env === 'string') return env;
  const parts = [];
  if (env.image) parts.push(env.image);
  if (env.build) parts.push('build ' + (env.build.path || '') + (env.build.dockerfile_path ? ` (${env.build.dockerfile_path})` : ''));
  if (env.plumbline && env.plumbline.command) parts.push('command ' + env.plumbline.command.join(' '));
  return parts.join(' · ');
}

function shareText(d, ep) {
  const live = (ep.traffic || {})[d.name] || 0;
  const mirror = (ep.mirror_traffic || {})[d.name] || 0;
  if (mirror) return `mirror ${mirror}%`;
  return live ? `${live}% of live traffic` : 'no live traffic';
}

function deploymentCard(d, ep, names) {
  const model = parseModel(d.model);
  const modelEl = model
    ? (model.name && model.version
      ? h('a', {href: `#/models/${encodeURIComponent(model.name)}/${encodeURIComponent(model.version)}`}, model.text)
      : h('span', null, model.text))
    : h('span', {class: 'muted'}, 'none');
  const rs = d.request_settings || {};
  const instances = d.instances || [];
  const ready = instances.filter((i) => i.ready).length;
  const reasonCls = d.provisioning_state === 'Failed' ? 'alert alert-error' : 'alert alert-warn';
  return h('article', {class: 'card dep-card', 'aria-label': 'Deployment ' + d.name},
    h('div', {class: 'card-head'},
      h('h3', null, dot(colorOf(d.name, names)), d.name, stateBadge(d.provisioning_state)),
      h('span', {class: 'share'}, shareText(d, ep))),
    d.serving ? h('div', {class: 'alert alert-warn serving', role: 'note'}, d.serving.summary) : null,
    d.reason ? h('div', {class: reasonCls, role: 'note'}, d.reason) : null,
    h('dl', {class: 'kv'},
      h('dt', null, 'Recent traffic'), h('dd', {class: 'health'}, healthText(d.health)),
      h('dt', null, 'Model'), h('dd', null, modelEl, d.model_digest ? [' ', digestEl(d.model_digest)] : null),
      h('dt', null, 'Code'), h('dd', null,
        d.code_configuration && d.code_configuration.scoring_script ? h('code', null, d.code_configuration.scoring_script) : null,
        ' ', d.code_digest ? digestEl(d.code_digest) : null),
      h('dt', null, 'Runtime'), h('dd', null, d.runtime || '—'),
      h('dt', null, 'Environment'), h('dd', null, environmentText(d.environment) || '—'),
      h('dt', null, 'Instances'), h('dd', null,
        `${ready} of ${d.instance_count ?? instances.length} ready`,
        d.instance_type ? h('span', {class: 'muted'}, ` · ${d.instance_type}`) : null),
      h('dt', null, 'Requests'), h('dd', null,
        `timeout ${rs.request_timeout_ms ?? '—'} ms · ${rs.max_concurrent_requests_per_instance ?? '—'} concurrent per instance`)),
    instances.length
      ? h('div', {class: 'instances', role: 'list', 'aria-label': 'Instances of ' + d.name},
        instances.map((i) => h('div', {class: 'instance', role: 'listitem'},
          h('span', {class: 'iname'}, i.name),
          stateBadge(i.ready ? 'Ready' : i.state),
          h('span', {class: 'muted'}, i.ready ? 'ready' : 'not ready'),
          h('span', {class: 'muted'}, `restarts ${i.restarts}`),
          i.started_at ? h('span', {class: 'muted'}, 'started ', timeEl(i.started_at)) : null,
          i.message ? h('span', {class: 'imsg'}, i.message) : null)))
      : h('p', {class: 'muted small'}, 'No instances running.'));
}

// healthText is what the gateway saw of the deployment recently: error
// rate and latency (show and list print the same figures).
export function healthText(hl) {
  if (!hl || !hl.requests) return 'no requests in the last 5 minutes';
  const pct = (hl.error_rate * 100).toFixed(1);
  const lat = hl.p50_ms != null ? ` · p50 ${hl.p50_ms.toFixed(1)} ms · p99 ${hl.p99_ms.toFixed(1)} ms` : '';
  return `${hl.errors} of ${hl.requests} requests failed (${pct}%)${lat}`;
}

// ---- traffic editor --------------------------------------------------------------

// checkTraffic applies the rules the API enforces (and Azure's): weights
// are whole numbers 0–100 totalling 0 or 100; the mirror share is 0–50 and
// goes to a deployment without live traffic.
export function checkTraffic(weights, mirrorTo, mirrorPct) {
  const errors = [];
  let sum = 0;
  for (const [name, v] of Object.entries(weights)) {
    if (!Number.isInteger(v) || v < 0 || v > 100) errors.push(`${name}: enter a whole number from 0 to 100.`);
    else sum += v;
  }
  if (sum !== 0 && sum !== 100) errors.push(`Live traffic totals ${sum}%; it must total 100% (or 0% for none).`);
  if (mirrorTo) {
    if (!Number.isInteger(mirrorPct) || mirrorPct < 0 || mirrorPct > 50) errors.push('Mirror share: enter a whole number from 0 to 50.');
    else if (mirrorPct > 0 && (weights[mirrorTo] || 0) > 0) {
      errors.push(`${mirrorTo} cannot receive live and mirrored traffic at once: set its live share to 0 or mirror to another deployment.`);
    }
  }
  return {sum, errors};
}

function readInt(input) {
  const s = input.value.trim();
  if (s === '') return 0;
  return /^\d+$/.test(s) ? Number(s) : NaN;
}

// onApplied runs after a new split is live (the cards show each share).
function trafficEditor(ctx, deps, view, onApplied) {
  const names = deps.map((d) => d.name).sort();
  const inputs = {};
  const live = () => ctx.ep.traffic || {};
  const mirrorNow = () => Object.entries(ctx.ep.mirror_traffic || {}).find(([, v]) => v > 0) || ['', 0];

  const rows = names.map((n) => {
    const id = 'traffic-' + n;
    inputs[n] = h('input', {id, name: id, type: 'number', min: '0', max: '100', step: '1', inputmode: 'numeric', value: String(live()[n] || 0)});
    return h('div', {class: 'trow'},
      h('label', {for: id}, dot(colorOf(n, names)), n),
      inputs[n],
      h('span', {class: 'pct', 'aria-hidden': 'true'}, '%'));
  });
  const [mTo, mPct] = mirrorNow();
  const mirrorSelect = h('select', {id: 'mirror-deployment', name: 'mirror-deployment', value: mTo},
    h('option', {value: ''}, 'No mirroring'),
    names.map((n) => h('option', {value: n}, n)));
  const mirrorInput = h('input', {id: 'mirror-percent', name: 'mirror-percent', type: 'number', min: '0', max: '50', step: '1',
    inputmode: 'numeric', value: String(mPct || 0)});

  const sumEl = h('div', {class: 'sum', 'aria-live': 'polite'});
  const preview = h('div');
  const status = h('div', {class: 'alert', role: 'status', 'aria-live': 'polite'});
  const apply = h('button', {type: 'submit', class: 'btn btn-primary', id: 'apply-traffic'}, 'Apply traffic');
  const reset = h('button', {type: 'button', class: 'btn'}, 'Reset');

  let baseline = '';
  const snapshot = () => JSON.stringify([names.map((n) => inputs[n].value), mirrorSelect.value, mirrorInput.value]);
  const current = () => {
    const weights = {};
    for (const n of names) weights[n] = readInt(inputs[n]);
    const to = mirrorSelect.value;
    return {weights, to, pct: to ? readInt(mirrorInput) : 0};
  };
  const update = () => {
    const {weights, to, pct} = current();
    const {sum, errors} = checkTraffic(weights, to, pct);
    const okSum = sum === 0 || sum === 100;
    sumEl.className = 'sum ' + (okSum ? 'ok' : 'bad');
    replace(sumEl, h('span', null, 'Total live traffic'),
      h('b', null, `${sum}%`, okSum ? ' ✓' : ' — must be 100 or 0'));
    for (const n of names) inputs[n].setAttribute('aria-invalid', String(!Number.isInteger(weights[n]) || weights[n] > 100));
    mirrorInput.disabled = !to;
    mirrorInput.setAttribute('aria-invalid', String(Boolean(to) && (!Number.isInteger(pct) || pct > 50)));
    const valid = {};
    for (const [n, v] of Object.entries(weights)) if (Number.isInteger(v)) valid[n] = v;
    replace(preview, trafficBar(valid, to && Number.isInteger(pct) ? {[to]: pct} : {}));
    return {weights, to, pct, errors};
  };
  const resetForm = () => {
    for (const n of names) inputs[n].value = String(live()[n] || 0);
    const [to, pct] = mirrorNow();
    mirrorSelect.value = to;
    mirrorInput.value = String(pct || 0);
    baseline = snapshot();
    update();
  };

  const form = h('form', {class: 'teditor', novalidate: true},
    h('fieldset', null,
      h('legend', null, 'Live traffic'),
      h('p', {class: 'legend-hint'}, 'The share of scoring requests each deployment answers. Total 100%, or 0% to stop traffic.'),
      rows,
      sumEl),
    h('fieldset', null,
      h('legend', null, 'Mirror traffic'),
      h('p', {class: 'legend-hint'}, 'Copy a share of live requests (0–50%) to one deployment without live traffic; its answers are discarded.'),
      h('div', {class: 'fields-row'},
        h('div', {class: 'field'}, h('label', {for: 'mirror-deployment'}, 'Deployment'), mirrorSelect),
        h('div', {class: 'field'}, h('label', {for: 'mirror-percent'}, 'Share (%)'), mirrorInput))),
    h('div', {class: 'field'}, h('span', {class: 'muted small'}, 'Preview'), preview),
    status,
    h('div', {class: 'btn-row'}, apply, reset));

  form.addEventListener('input', update);
  form.addEventListener('change', update);
  reset.addEventListener('click', () => {
    resetForm();
    status.className = 'alert';
    status.textContent = '';
  });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const {weights, to, pct, errors} = update();
    if (errors.length) {
      status.className = 'alert alert-error';
      replace(status, h('strong', null, 'Not applied. '), errors.length === 1 ? errors[0] : h('ul', null, errors.map((e) => h('li', null, e))));
      return;
    }
    apply.disabled = true;
    status.className = 'alert alert-info';
    status.textContent = 'Applying…';
    try {
      // Build the document from the endpoint as it is now, so a
      // description or tag changed elsewhere is kept.
      const fresh = await api.endpoint(ctx.ep.name, {signal: view.signal});
      const doc = editableEndpoint(fresh, weights, to ? {[to]: pct} : {});
      const updated = await api.putEndpoint(ctx.ep.name, doc, {signal: view.signal});
      ctx.setEndpoint(updated);
      resetForm();
      onApplied();
      status.className = 'alert alert-ok';
      const split = Object.entries(updated.traffic || {}).filter(([, v]) => v > 0).map(([n, v]) => `${n} ${v}%`).join(' · ') || 'no live traffic';
      const mirror = Object.entries(updated.mirror_traffic || {}).filter(([, v]) => v > 0).map(([n, v]) => `, mirror ${n} ${v}%`).join('');
      status.textContent = `Applied: ${split}${mirror}.`;
    } catch (err) {
      if (err.name === 'AbortError' || err.unauthorized) return;
      status.className = 'alert alert-error';
      replace(status, h('strong', null, 'Not applied: '), err.message,
        (err.details || []).length > 1 ? h('ul', null, err.details.map((d) => h('li', null, d.message))) : null);
    } finally {
      apply.disabled = false;
    }
  });

  resetForm();
  const el = h('div', {class: 'card'},
    h('div', {class: 'card-head'}, h('h2', null, 'Traffic')),
    names.length ? form : h('p', {class: 'muted'}, 'Traffic can be split once the endpoint has deployments.'));
  return {el, dirty: () => snapshot() !== baseline};
}
