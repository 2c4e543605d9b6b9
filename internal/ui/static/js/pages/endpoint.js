// One endpoint: a header (state, auth mode, scoring URI, traffic) and tabs
// for its deployments and traffic, testing, credentials, logs and metrics.
// Each tab is its own route (#/endpoints/<name>/<tab>) so it can be linked
// and the browser's back button works.

import {api} from '../api.js';
import {h, replace, stateBadge, copyable, trafficBar, errorBox} from '../dom.js';
import * as details from './details.js';
import * as test from './test.js';
import * as consume from './consume.js';
import * as logs from './logs.js';
import * as metrics from './metrics.js';
import * as rollout from './rollout.js';

const TABS = {
  details: {label: () => 'Deployments & traffic', module: details},
  rollout: {label: () => 'Rollout', module: rollout},
  test: {label: () => 'Test', module: test},
  consume: {label: (ep) => ({key: 'Keys', aml_token: 'Token'}[ep.auth_mode] || 'Authentication'), module: consume},
  logs: {label: () => 'Logs', module: logs},
  metrics: {label: () => 'Metrics', module: metrics},
};

export async function render(main, {name, tab}, view) {
  const base = '#/endpoints/' + encodeURIComponent(name);
  const crumbs = h('nav', {class: 'crumbs', 'aria-label': 'Breadcrumb'}, h('a', {href: '#/endpoints'}, 'Endpoints'), ' / ', name);
  document.title = `${name} · plumbline studio`;
  if (!TABS[tab]) {
    replace(main, crumbs, h('h1', null, name),
      h('div', {class: 'alert alert-error', role: 'alert'}, `No tab “${tab}”. `, h('a', {href: base}, 'Show the deployments'), '.'));
    return;
  }
  replace(main, crumbs, h('h1', null, name), h('p', {class: 'loading'}, 'Loading…'));

  let ep;
  let deps;
  try {
    [ep, deps] = await Promise.all([
      api.endpoint(name, {signal: view.signal}),
      api.deployments(name, {signal: view.signal}),
    ]);
  } catch (err) {
    if (err.name === 'AbortError' || err.unauthorized) throw err;
    replace(main, crumbs, h('h1', null, name), errorBox(err, `Could not load endpoint ${name}`),
      h('p', null, h('a', {href: '#/endpoints'}, 'Back to the endpoints')));
    return;
  }

  const meta = h('div', {class: 'ep-meta'});
  const trafficSlot = h('div');
  const showEndpoint = (e) => {
    replace(meta,
      stateBadge(e.provisioning_state),
      h('span', null, 'auth ', h('code', null, e.auth_mode)),
      e.kind && e.kind !== 'Managed' ? h('span', null, e.kind) : null,
      copyable(e.scoring_uri, 'scoring URI'));
    replace(trafficSlot, trafficBar(e.traffic, e.mirror_traffic));
  };
  showEndpoint(ep);

  const tabs = h('nav', {class: 'tabs', 'aria-label': 'Endpoint sections'},
    Object.entries(TABS).map(([id, t]) => h('a', {
      href: `${base}/${id}`,
      'aria-current': id === tab ? 'page' : null,
    }, t.label(ep))));
  const panel = h('section', {'aria-label': TABS[tab].label(ep)});

  replace(main,
    crumbs,
    h('div', {class: 'page-head'},
      h('div', null,
        h('h1', null, ep.name),
        ep.description ? h('p', {class: 'sub'}, ep.description) : null,
        meta),
      trafficSlot),
    tabs,
    panel);

  // ctx is shared with the tab: a tab that changes the endpoint (traffic)
  // calls setEndpoint, which updates ctx.ep and the header at once.
  const ctx = {
    ep,
    deps,
    setEndpoint(e) {
      ctx.ep = e;
      showEndpoint(e);
    },
  };
  await TABS[tab].module.render(panel, ctx, view);
}
