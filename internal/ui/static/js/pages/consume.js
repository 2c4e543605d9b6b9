// Keys or token: the endpoint's credentials (keys: show, copy, regenerate;
// aml_token: issue one) and how a client calls the endpoint with them.

import {api} from '../api.js';
import {h, replace, errorBox, copyButton, copyable, fmtTime} from '../dom.js';

const MASK = '•'.repeat(24);

export async function render(panel, ctx, view) {
  const {ep} = ctx;
  const credCard = h('div', {class: 'card'}, h('p', {class: 'loading'}, 'Loading…'));
  const useCard = h('div', {class: 'card'});
  replace(panel, h('div', {class: 'stack'}, credCard, useCard));

  let caPath = '';
  let snippets = null;
  try {
    [caPath, snippets] = await Promise.all([
      api.server({signal: view.signal}).then((s) => s.ca_cert_path || ''),
      api.snippets(ep.name, {signal: view.signal}),
    ]);
  } catch (err) {
    if (err.name === 'AbortError' || err.unauthorized) throw err;
    replace(useCard, errorBox(err, 'Could not read the examples'));
  }
  if (snippets) replace(useCard, usage(ep, caPath, snippets));

  switch (ep.auth_mode) {
    case 'key':
      return keys(credCard, ep, view);
    case 'aml_token':
      return token(credCard, ep, view);
    default:
      replace(credCard,
        h('div', {class: 'card-head'}, h('h2', null, 'Authentication')),
        h('p', null, 'This endpoint uses ', h('code', null, ep.auth_mode), ': clients send a Microsoft Entra (OpenID Connect) token ',
          'from the issuer the server was started with (', h('code', null, 'plumbline serve --oidc-issuer'), '). ',
          'plumbline does not issue these tokens.'));
  }
}

// secretRow shows one secret masked, with Show/Hide and Copy, plus extra
// buttons.
function secretRow(label, value, ...extra) {
  const text = h('span', {class: 'secret'});
  let shown = false;
  const masked = () => [h('span', {'aria-hidden': 'true'}, MASK), h('span', {class: 'visually-hidden'}, 'hidden')];
  const toggle = h('button', {type: 'button', class: 'btn btn-small', 'aria-label': 'Show ' + label.toLowerCase()}, 'Show');
  const draw = () => replace(text, shown ? value() : masked());
  draw();
  toggle.addEventListener('click', () => {
    shown = !shown;
    draw();
    toggle.textContent = shown ? 'Hide' : 'Show';
    toggle.setAttribute('aria-label', `${shown ? 'Hide' : 'Show'} ${label.toLowerCase()}`);
  });
  const row = h('div', {class: 'secret-row'},
    h('span', {class: 'muted'}, label),
    text,
    h('div', {class: 'btn-row'}, toggle, copyButton(value, 'Copy', label), extra));
  return {row, refresh: draw};
}

async function keys(card, ep, view) {
  let current;
  try {
    current = await api.listKeys(ep.name, {signal: view.signal});
  } catch (err) {
    if (err.name === 'AbortError' || err.unauthorized) throw err;
    replace(card, errorBox(err, 'Could not read the keys'));
    return;
  }
  const status = h('div', {class: 'alert', role: 'status', 'aria-live': 'polite'});
  const rows = [];
  for (const [kind, field] of [['primary', 'primaryKey'], ['secondary', 'secondaryKey']]) {
    const label = kind === 'primary' ? 'Primary key' : 'Secondary key';
    const regen = h('button', {type: 'button', class: 'btn btn-small btn-danger'}, 'Regenerate');
    const r = secretRow(label, () => current[field], regen);
    const confirm = h('div', {class: 'confirm', hidden: true},
      h('span', null, `Replace the ${kind} key? Clients using it stop working at once.`));
    const yes = h('button', {type: 'button', class: 'btn btn-small btn-danger'}, `Regenerate ${kind} key`);
    const no = h('button', {type: 'button', class: 'btn btn-small'}, 'Cancel');
    confirm.append(yes, no);
    r.row.append(confirm);
    regen.addEventListener('click', () => { confirm.hidden = false; no.focus(); });
    no.addEventListener('click', () => { confirm.hidden = true; regen.focus(); });
    yes.addEventListener('click', async () => {
      yes.disabled = true;
      try {
        current = await api.regenerateKey(ep.name, kind, {signal: view.signal});
        rows.forEach((x) => x.refresh());
        status.className = 'alert alert-ok';
        status.textContent = `The ${kind} key was regenerated; the old one no longer works.`;
      } catch (err) {
        if (err.name === 'AbortError' || err.unauthorized) return;
        status.className = 'alert alert-error';
        status.textContent = 'Not regenerated: ' + err.message;
      } finally {
        yes.disabled = false;
        confirm.hidden = true;
        regen.focus();
      }
    });
    rows.push(r);
  }
  replace(card,
    h('div', {class: 'card-head'}, h('h2', null, 'Keys')),
    h('p', {class: 'muted small'}, 'Clients send a key as ', h('code', null, 'Authorization: Bearer <key>'),
      '. Two keys let you rotate: move clients to one, regenerate the other.'),
    rows.map((r) => r.row),
    status);
}

async function token(card, ep, view) {
  const out = h('div');
  const status = h('div', {class: 'alert', role: 'status', 'aria-live': 'polite'});
  const get = h('button', {type: 'button', class: 'btn btn-primary'}, 'Get a token');
  get.addEventListener('click', async () => {
    get.disabled = true;
    try {
      const t = await api.token(ep.name, {signal: view.signal});
      const r = secretRow('Access token', () => t.accessToken);
      replace(out, r.row, h('dl', {class: 'kv'},
        h('dt', null, 'Expires'), h('dd', null, fmtTime(t.expiryTimeUtc)),
        h('dt', null, 'Refresh after'), h('dd', null, fmtTime(t.refreshAfterTimeUtc))));
      status.className = 'alert';
      status.textContent = '';
    } catch (err) {
      if (err.name === 'AbortError' || err.unauthorized) return;
      status.className = 'alert alert-error';
      status.textContent = 'No token: ' + err.message;
    } finally {
      get.disabled = false;
    }
  });
  replace(card,
    h('div', {class: 'card-head'}, h('h2', null, 'Token'), get),
    h('p', {class: 'muted small'}, 'This endpoint takes aml_tokens: short-lived tokens clients send as ',
      h('code', null, 'Authorization: Bearer <token>'), ' and renew before they expire.'),
    out,
    status);
}

// usage shows the calls `plumbline up` prints (the server writes both, so
// they are the same text): export the key, then curl, or R from that shell.
function usage(ep, caPath, snippets) {
  const block = (title, text, what) => [
    h('h3', {class: 'small muted'}, title),
    h('pre', {class: 'snippet', tabindex: '0'}, text),
    h('div', {class: 'btn-row'}, copyButton(text, 'Copy', what)),
  ];
  return [
    h('div', {class: 'card-head'}, h('h2', null, 'Call the endpoint')),
    h('dl', {class: 'kv'},
      h('dt', null, 'Scoring URI'), h('dd', null, copyable(ep.scoring_uri, 'scoring URI')),
      h('dt', null, 'OpenAPI'), h('dd', null, h('code', null, ep.openapi_uri)),
      caPath ? h('dt', null, 'CA certificate') : null, caPath ? h('dd', null, h('code', null, caPath)) : null),
    h('p', {class: 'muted small'}, 'They work as pasted, from any folder: run the first line in your shell, then curl, or start R from that shell.'),
    block('Key (shell)', snippets.shell, 'the key command'),
    block('curl', snippets.curl, 'the curl example'),
    block('R (httr2)', snippets.r, 'the R example'),
  ];
}
