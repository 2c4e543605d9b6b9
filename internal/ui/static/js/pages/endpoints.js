// Endpoints: every online endpoint with its auth mode, state, scoring URI
// and traffic split; refreshed every 5 seconds.

import {api} from '../api.js';
import {h, replace, stateBadge, copyable, trafficBar, errorBox, timeEl} from '../dom.js';

export async function render(main, view) {
  document.title = 'Endpoints · plumbline studio';
  const body = h('div', {class: 'card'}, h('p', {class: 'loading'}, 'Loading endpoints…'));
  const count = h('p', {class: 'sub'});
  replace(main,
    h('div', {class: 'page-head'},
      h('div', null, h('h1', null, 'Endpoints'), count)),
    body);

  // Redraw only when something changed, so a refresh never takes the
  // keyboard focus away from a link or a copy button.
  let shown = '';
  const load = async () => {
    let eps;
    try {
      eps = await api.endpoints({signal: view.signal});
    } catch (err) {
      if (err.name === 'AbortError' || err.unauthorized) throw err;
      shown = '';
      replace(body, errorBox(err, 'Could not list the endpoints'));
      return;
    }
    const key = JSON.stringify(eps);
    if (key === shown) return;
    shown = key;
    count.textContent = eps.length === 1 ? '1 online endpoint' : `${eps.length} online endpoints`;
    replace(body, eps.length ? table(eps) : empty());
  };
  await load();
  view.every(5000, load);
}

function table(eps) {
  return h('div', {class: 'table-wrap'},
    h('table', {class: 'table stack-sm'},
      h('thead', null, h('tr', null,
        h('th', {scope: 'col'}, 'Name'),
        h('th', {scope: 'col'}, 'State'),
        h('th', {scope: 'col'}, 'Auth'),
        h('th', {scope: 'col'}, 'Traffic'),
        h('th', {scope: 'col'}, 'Scoring URI'),
        h('th', {scope: 'col'}, 'Updated'))),
      h('tbody', null, eps.map((ep) => h('tr', null,
        h('td', {class: 'name-cell', 'data-label': 'Name'},
          h('a', {href: '#/endpoints/' + encodeURIComponent(ep.name)}, ep.name),
          ep.description ? h('div', {class: 'muted small'}, ep.description) : null),
        h('td', {'data-label': 'State'}, stateBadge(ep.provisioning_state)),
        h('td', {'data-label': 'Auth'}, h('code', null, ep.auth_mode)),
        h('td', {'data-label': 'Traffic'}, trafficBar(ep.traffic, ep.mirror_traffic)),
        h('td', {'data-label': 'Scoring URI'}, copyable(ep.scoring_uri, 'scoring URI of ' + ep.name)),
        h('td', {'data-label': 'Updated', class: 'nowrap'}, timeEl(ep.updated_at)))))));
}

function empty() {
  return h('div', {class: 'empty'},
    h('h2', null, 'No endpoints yet'),
    h('p', null, 'Create one from an endpoint file, then add a deployment:'),
    h('pre', {class: 'snippet'},
      'plumbline online-endpoint create -f endpoint.yml\n' +
      'plumbline online-deployment create -f deployment.yml --all-traffic'));
}
