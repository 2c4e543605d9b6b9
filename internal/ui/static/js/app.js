// plumbline studio: the shell (top bar, sign-in, sign-out) and the hash
// router. Each page is a module exporting render(main, params, view); the
// View it gets is disposed when the user leaves the page, which aborts the
// page's requests and stops its timers and streams.

import {api, session, setUnauthorizedHandler, ApiError, redeemSignInLink} from './api.js';
import {h, replace} from './dom.js';
import * as endpointsPage from './pages/endpoints.js';
import * as endpointPage from './pages/endpoint.js';
import * as modelsPage from './pages/models.js';

// View is one rendered page's lifetime.
export class View {
  constructor() {
    this.ac = new AbortController();
    this.timers = new Set();
    this.cleanups = [];
  }

  get signal() {
    return this.ac.signal;
  }

  get alive() {
    return !this.ac.signal.aborted;
  }

  // every runs fn every ms while the page is shown and the tab visible; a
  // run does not start before the previous one has finished.
  every(ms, fn) {
    let busy = false;
    const id = setInterval(async () => {
      if (busy || !this.alive || document.hidden) return;
      busy = true;
      try {
        await fn();
      } catch (err) {
        if (err.name !== 'AbortError' && !err.unauthorized) console.warn('studio: refresh failed:', err.message);
      } finally {
        busy = false;
      }
    }, ms);
    this.timers.add(id);
  }

  onDispose(f) {
    this.cleanups.push(f);
  }

  dispose() {
    this.ac.abort();
    for (const id of this.timers) clearInterval(id);
    this.timers.clear();
    for (const f of this.cleanups.splice(0)) {
      try { f(); } catch { /* leaving anyway */ }
    }
  }
}

const main = document.getElementById('main');
const nav = document.querySelector('.mainnav');
const signOutBtn = document.getElementById('sign-out');
const serverInfo = document.getElementById('server-info');

let current = null;
let shownPath = '';

const routes = [
  {re: /^#?\/?$/, page: 'endpoints', render: (m, p, v) => endpointsPage.render(m, v)},
  {re: /^#\/endpoints\/?$/, page: 'endpoints', render: (m, p, v) => endpointsPage.render(m, v)},
  {re: /^#\/endpoints\/([^/]+)(?:\/([a-z]+))?\/?$/, page: 'endpoints',
    render: (m, p, v) => endpointPage.render(m, {name: p[0], tab: p[1] || 'details'}, v)},
  {re: /^#\/models\/?$/, page: 'models', render: (m, p, v) => modelsPage.render(m, {}, v)},
  {re: /^#\/models\/([^/]+)\/([^/]+)\/?$/, page: 'models',
    render: (m, p, v) => modelsPage.render(m, {name: p[0], version: p[1]}, v)},
];

function decode(parts) {
  return parts.map((x) => (x === undefined ? undefined : decodeURIComponent(x)));
}

async function route() {
  if (current) current.dispose();
  current = null;
  if (!session.token()) {
    showSignIn();
    return;
  }
  showShell(true);
  const hash = location.hash || '#/endpoints';
  const match = routes.map((r) => ({r, m: hash.match(r.re)})).find((x) => x.m);
  for (const a of nav.querySelectorAll('a')) {
    if (match && a.dataset.nav === match.r.page) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const view = new View();
  current = view;
  if (!match) {
    document.title = 'Not found · plumbline studio';
    replace(main, h('div', {class: 'card empty'},
      h('h1', {tabindex: '-1'}, 'No such page'),
      h('p', null, 'Nothing lives at ', h('code', null, hash), '. ', h('a', {href: '#/endpoints'}, 'Go to the endpoints'), '.')));
    focusHeading(true);
    return;
  }
  // Move focus to the new page's heading when the page (not just a tab)
  // changes, so keyboard and screen-reader users start at the top.
  const path = hash.split('/').slice(0, 3).join('/');
  const pageChanged = path !== shownPath;
  shownPath = path;
  try {
    await match.r.render(main, decode(match.m.slice(1)), view);
  } catch (err) {
    if (err.name === 'AbortError' || err.unauthorized) return;
    console.warn('studio: page failed:', err);
    replace(main, h('div', {class: 'alert alert-error', role: 'alert'}, h('strong', null, 'This page failed: '), err.message || String(err)));
  }
  if (view.alive) focusHeading(pageChanged);
}

function focusHeading(really) {
  if (!really) return;
  const h1 = main.querySelector('h1');
  if (h1) {
    if (!h1.hasAttribute('tabindex')) h1.setAttribute('tabindex', '-1');
    h1.focus({preventScroll: true});
  }
}

function showShell(signedIn) {
  nav.hidden = !signedIn;
  signOutBtn.hidden = !signedIn;
  if (!signedIn) serverInfo.textContent = '';
}

async function loadServerInfo() {
  try {
    const info = await api.server();
    serverInfo.textContent = `plumbline ${info.version} · ${info.driver} driver`;
    serverInfo.title = info.data_dir ? `data dir ${info.data_dir}` : '';
  } catch {
    // Shown in the pages themselves.
  }
}

// ---- sign in ----------------------------------------------------------------

let signInMessage = null;

function showSignIn() {
  showShell(false);
  shownPath = '';
  document.title = 'Sign in · plumbline studio';
  const input = h('input', {id: 'token', name: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false',
    required: true, 'aria-describedby': 'token-where'});
  const status = h('div', {class: 'alert', role: 'status', 'aria-live': 'polite'});
  if (signInMessage) {
    status.className = 'alert ' + signInMessage.cls;
    status.textContent = signInMessage.text;
    signInMessage = null;
  }
  const submit = h('button', {type: 'submit', class: 'btn btn-primary'}, 'Sign in');
  const form = h('form', {novalidate: true},
    h('div', {class: 'field'},
      h('label', {for: 'token'}, 'Admin token'),
      input,
      h('p', {class: 'where', id: 'token-where'},
        h('code', null, 'plumbline serve'), ' writes it to ', h('code', null, 'admin.token'),
        ' in its data directory: by default ', h('code', null, '~/.local/share/plumbline/admin.token'),
        ' (or ', h('code', null, '$PLUMBLINE_DATA_DIR/admin.token'), '). On the server, run ',
        h('code', null, 'cat ~/.local/share/plumbline/admin.token'), '.')),
    status,
    submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const token = input.value.trim();
    if (!token) {
      status.className = 'alert alert-error';
      status.textContent = 'Paste the admin token first.';
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    submit.disabled = true;
    status.className = 'alert alert-info';
    status.textContent = 'Checking the token…';
    try {
      await api.server({token});
      session.set(token);
      input.value = '';
      loadServerInfo();
      await route();
    } catch (err) {
      status.className = 'alert alert-error';
      status.textContent = err instanceof ApiError && err.status === 401
        ? 'The server refused this token. Copy it again from admin.token (it changes only when the data directory does).'
        : err.message;
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    } finally {
      submit.disabled = false;
    }
  });
  replace(main, h('div', {class: 'login'},
    h('div', {class: 'card'},
      h('h1', null, h('img', {src: 'icon.svg', alt: '', width: '30', height: '30'}), 'Sign in to plumbline studio'),
      h('p', {class: 'muted'}, 'See your endpoints, test them, shift traffic, and read logs and metrics.'),
      form)));
  input.focus();
}

setUnauthorizedHandler(() => {
  if (current) current.dispose();
  current = null;
  signInMessage = {cls: 'alert-warn', text: 'Your session ended: the server refused the admin token (a server with another data directory?). Sign in again.'};
  showSignIn();
});

signOutBtn.addEventListener('click', () => {
  session.clear();
  if (current) current.dispose();
  current = null;
  signInMessage = {cls: 'alert-ok', text: 'Signed out. The token was removed from this browser tab.'};
  showSignIn();
});

window.addEventListener('hashchange', route);
redeemSignInLink().then(({message}) => {
  if (message) signInMessage = {cls: 'alert-warn', text: message};
  if (session.token()) loadServerInfo();
  route();
});
