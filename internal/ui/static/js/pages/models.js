// Models: every registered model version (archived ones too) and, for the
// selected one, its files with sizes and digests and the deployments that
// pin it.

import {api} from '../api.js';
import {h, replace, errorBox, fmtBytes, digestEl, timeEl, copyable, fmtTime} from '../dom.js';

export async function render(main, params, view) {
  document.title = 'Models · plumbline studio';
  const count = h('p', {class: 'sub'});
  const list = h('div', {class: 'card'}, h('p', {class: 'loading'}, 'Loading models…'));
  const detail = h('div');
  replace(main,
    h('div', {class: 'page-head'}, h('div', null, h('h1', null, 'Models'), count)),
    h('div', {class: 'cols'}, list, detail));

  let models;
  try {
    models = await api.models({signal: view.signal});
  } catch (err) {
    if (err.name === 'AbortError' || err.unauthorized) throw err;
    replace(list, errorBox(err, 'Could not list the models'));
    return;
  }
  const names = new Set(models.map((m) => m.name));
  count.textContent = `${names.size} ${names.size === 1 ? 'model' : 'models'}, ${models.length} ${models.length === 1 ? 'version' : 'versions'}`;
  if (!models.length) {
    replace(list, h('div', {class: 'empty'},
      h('h2', null, 'No models yet'),
      h('p', null, 'Register a folder or file as a model version:'),
      h('pre', {class: 'snippet'}, 'plumbline model create --name my-model --path models')));
    return;
  }
  const selected = params.name
    ? models.find((m) => m.name === params.name && m.version === params.version)
    : models[0];
  replace(list, table(models, selected));
  if (params.name && !selected) {
    replace(detail, h('div', {class: 'alert alert-error', role: 'alert'}, `No model ${params.name} version ${params.version}.`));
    return;
  }
  replace(detail, h('div', {class: 'card'}, h('p', {class: 'loading'}, 'Loading…')));
  await showDetail(detail, selected, view);
}

function table(models, selected) {
  return h('div', {class: 'table-wrap'},
    h('table', {class: 'table stack-sm'},
      h('thead', null, h('tr', null,
        h('th', {scope: 'col'}, 'Model'),
        h('th', {scope: 'col', class: 'num'}, 'Size'),
        h('th', {scope: 'col', class: 'num'}, 'Files'),
        h('th', {scope: 'col'}, 'Digest'),
        h('th', {scope: 'col'}, 'Registered'))),
      h('tbody', null, models.map((m) => h('tr', {class: m === selected ? 'selected' : null},
        h('td', {class: 'name-cell', 'data-label': 'Model'},
          h('a', {href: `#/models/${encodeURIComponent(m.name)}/${encodeURIComponent(m.version)}`,
            'aria-current': m === selected ? 'true' : null}, `${m.name}:${m.version}`),
          m.archived ? [' ', h('span', {class: 'badge warn plain'}, 'archived')] : null),
        h('td', {class: 'num', 'data-label': 'Size'}, fmtBytes(m.size)),
        h('td', {class: 'num', 'data-label': 'Files'}, String(m.files)),
        h('td', {'data-label': 'Digest'}, digestEl(m.digest)),
        h('td', {'data-label': 'Registered', class: 'nowrap'}, timeEl(m.created_at)))))));
}

async function showDetail(slot, m, view) {
  let full;
  let files;
  try {
    [full, files] = await Promise.all([
      api.model(m.name, m.version, {signal: view.signal}),
      api.manifest(m.digest, {signal: view.signal}),
    ]);
  } catch (err) {
    if (err.name === 'AbortError' || err.unauthorized) throw err;
    replace(slot, h('div', {class: 'card'}, errorBox(err, `Could not load ${m.name}:${m.version}`)));
    return;
  }
  const usedBy = full.used_by || [];
  const tags = Object.entries(full.tags || {});
  const entries = files.filter((f) => f.type !== 'dir');
  replace(slot, h('div', {class: 'card', id: 'model-detail'},
    h('div', {class: 'card-head'},
      h('h2', null, `${full.name}:${full.version}`, full.archived ? h('span', {class: 'badge warn plain'}, 'archived') : null),
      h('span', {class: 'badge plain'}, full.type)),
    full.description ? h('p', null, full.description) : null,
    h('dl', {class: 'kv'},
      h('dt', null, 'Reference'), h('dd', null, copyable(`azureml:${full.name}:${full.version}`, 'model reference')),
      h('dt', null, 'Mounted at'), h('dd', null, h('code', null, `$AZUREML_MODEL_DIR/${full.path}`)),
      h('dt', null, 'Digest'), h('dd', null, h('code', {class: 'mono'}, full.digest)),
      h('dt', null, 'Size'), h('dd', null, `${fmtBytes(full.size)} in ${full.files} ${full.files === 1 ? 'file' : 'files'}`),
      h('dt', null, 'Registered'), h('dd', null, fmtTime(full.created_at)),
      tags.length ? [h('dt', null, 'Tags'), h('dd', null, tags.map(([k, v]) => h('span', {class: 'badge plain'}, `${k}=${v}`)))] : null),
    h('h3', {class: 'small muted'}, 'Used by'),
    usedBy.length
      ? h('ul', {class: 'used-by'}, usedBy.map((u) => {
        const [e, d] = u.split('/');
        return h('li', null, h('a', {href: '#/endpoints/' + encodeURIComponent(e)}, e), ' / ', d);
      }))
      : h('p', {class: 'muted small'}, 'No deployment pins this version.'),
    h('h3', {class: 'small muted'}, 'Files'),
    h('div', {class: 'table-wrap'},
      h('table', {class: 'table files stack-sm'},
        h('thead', null, h('tr', null,
          h('th', {scope: 'col'}, 'Path'), h('th', {scope: 'col', class: 'num'}, 'Size'), h('th', {scope: 'col'}, 'Digest'))),
        h('tbody', null, entries.map((f) => h('tr', null,
          h('td', {class: 'path', 'data-label': 'Path'}, f.path, f.type === 'symlink' ? ` → ${f.target}` : ''),
          h('td', {class: 'num', 'data-label': 'Size'}, f.type === 'file' ? fmtBytes(f.size) : f.type),
          h('td', {'data-label': 'Digest'}, digestEl(f.digest)))))))));
}
