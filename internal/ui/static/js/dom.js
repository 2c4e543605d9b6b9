// Small DOM helpers shared by every page: element builders, formatting,
// copy buttons, error boxes, deployment colours and traffic bars. Nothing
// here writes HTML strings: text always goes in as text nodes, so data from
// the server can never become markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

// h builds an element: h('a', {href: '#/x', class: 'btn', onclick: f}, 'text', child…).
// Attribute values false/null/undefined are skipped; true sets an empty
// attribute; `style` takes custom properties ({'--c': 'red'}), set through
// the CSSOM (allowed by the page's Content-Security-Policy); `value` and
// `checked` are set as properties after the children (so a <select> can
// pick one of its options).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  const late = {};
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'style') setVars(el, v);
    else if (k === 'value' || k === 'checked' || k === 'selected') late[k] = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  Object.assign(el, late);
  return el;
}

// s builds an SVG element with attributes.
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

export function setVars(el, vars) {
  for (const [k, v] of Object.entries(vars)) el.style.setProperty(k, String(v));
}

// replace swaps a node's children for the given ones.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// ---- formatting ------------------------------------------------------------

export function fmtBytes(n) {
  if (n === undefined || n === null) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? String(v) : v.toFixed(v < 10 ? 1 : 0)) + ' ' + units[i];
}

// shortDigest turns sha256:e762035d2d8c… into sha256:e762035d2d8c.
export function shortDigest(d) {
  if (!d) return '';
  const [algo, hex] = d.includes(':') ? d.split(':', 2) : ['', d];
  return (algo ? algo + ':' : '') + hex.slice(0, 12);
}

export function digestEl(d) {
  if (!d) return h('span', {class: 'muted'}, '—');
  return h('code', {title: d, class: 'mono'}, shortDigest(d));
}

export function fmtTime(iso) {
  if (!iso || iso.startsWith('0001-')) return '';
  const t = new Date(iso);
  return t.toLocaleString(undefined, {dateStyle: 'medium', timeStyle: 'short'});
}

export function ago(iso) {
  if (!iso || iso.startsWith('0001-')) return '';
  const secs = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  if (secs < 45) return 'just now';
  const mins = Math.round(secs / 60);
  if (mins < 60) return mins + ' min ago';
  const hours = Math.round(mins / 60);
  if (hours < 36) return hours + ' h ago';
  return Math.round(hours / 24) + ' days ago';
}

export function timeEl(iso) {
  const rel = ago(iso);
  if (!rel) return h('span', {class: 'muted'}, '—');
  return h('time', {datetime: iso, title: fmtTime(iso)}, rel);
}

// ---- states ----------------------------------------------------------------

export function stateBadge(state) {
  const cls = {Succeeded: 'ok', Ready: 'ok', Failed: 'bad', Deleting: 'warn', Creating: 'info', Updating: 'info',
    Starting: 'info', NotReady: 'warn', Exited: 'bad', Unhealthy: 'bad', Stopped: 'warn'}[state] || '';
  return h('span', {class: 'badge ' + cls}, state || 'Unknown');
}

// ---- errors ----------------------------------------------------------------

// errorBox shows an API error where the content would have been: the
// server's message (and validation details), never a blank page. Errors
// that sent the user back to sign in render nothing.
export function errorBox(err, what) {
  if (err && err.unauthorized) return document.createTextNode('');
  if (err && err.name === 'AbortError') return document.createTextNode('');
  const box = h('div', {class: 'alert alert-error', role: 'alert'},
    h('strong', null, what ? what + ': ' : 'Error: '),
    (err && err.message) || String(err));
  const details = (err && err.details) || [];
  if (details.length > 1) {
    box.append(h('ul', null, details.map((d) => h('li', null, d.message))));
  }
  return box;
}

// ---- copy ------------------------------------------------------------------

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // No clipboard permission (e.g. an embedded or headless browser): fall
    // back to a selected, off-screen textarea.
    const ta = h('textarea', {class: 'visually-hidden', readonly: true, 'aria-hidden': 'true', tabindex: '-1'});
    ta.value = text;
    document.body.append(ta);
    ta.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch { ok = false; }
    ta.remove();
    return ok;
  }
}

// copyButton copies text() (a string or a function returning one) and
// says so in its label for a moment.
export function copyButton(text, label = 'Copy', what = '') {
  const btn = h('button', {type: 'button', class: 'btn btn-small', 'aria-label': what ? 'Copy ' + what : label}, label);
  btn.addEventListener('click', async () => {
    const value = typeof text === 'function' ? await text() : text;
    const ok = await copyText(value);
    btn.textContent = ok ? 'Copied' : 'Copy failed';
    setTimeout(() => { btn.textContent = label; }, 1500);
  });
  return btn;
}

export function copyable(text, what) {
  return h('span', {class: 'copyable'}, h('code', {title: text}, text), copyButton(text, 'Copy', what));
}

// ---- deployment colours and traffic bars ---------------------------------------

const NAMED = {
  blue: '#2f6fdb', green: '#24995a', red: '#d04a3c', orange: '#e07b24', yellow: '#d4a514',
  purple: '#8252d6', violet: '#8252d6', pink: '#d2508f', teal: '#14909c', gray: '#6b7585', grey: '#6b7585',
};
const PALETTE = ['#14909c', '#8252d6', '#e07b24', '#d2508f', '#5c8a1f', '#6b7585', '#2f6fdb', '#24995a'];

// colorOf gives a deployment a stable colour: its own name when it is a
// colour (blue/green rollouts), else a palette entry by its position.
export function colorOf(name, allNames) {
  const key = String(name).toLowerCase();
  if (NAMED[key]) return NAMED[key];
  const others = [...allNames].map((n) => String(n).toLowerCase()).filter((n) => !NAMED[n]).sort();
  const i = Math.max(0, others.indexOf(key));
  return PALETTE[i % PALETTE.length];
}

export function dot(color, hatched = false) {
  return h('span', {class: 'dot' + (hatched ? ' hatched' : ''), style: {'--c': color}, 'aria-hidden': 'true'});
}

function entries(m) {
  return Object.entries(m || {}).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}

// trafficBar draws an endpoint's live split and, below it and hatched, its
// mirror share, with a text legend (the bar itself is decorative).
export function trafficBar(traffic, mirror) {
  const names = [...Object.keys(traffic || {}), ...Object.keys(mirror || {})];
  const live = entries(traffic);
  const mirrored = entries(mirror);
  const wrap = h('div', {class: 'traffic'});
  const bar = h('div', {class: 'tbar', 'aria-hidden': 'true'},
    live.map(([n, v]) => h('span', {class: 'seg', style: {'--w': v + '%', '--c': colorOf(n, names)}})));
  wrap.append(bar);
  if (mirrored.length) {
    wrap.append(h('div', {class: 'tbar mirror', 'aria-hidden': 'true'},
      mirrored.map(([n, v]) => h('span', {class: 'seg', style: {'--w': v + '%', '--c': colorOf(n, names)}}))));
  }
  const legend = h('div', {class: 'tlegend'});
  if (!live.length) legend.append(h('span', {class: 'item'}, 'no live traffic'));
  for (const [n, v] of live) {
    legend.append(h('span', {class: 'item'}, dot(colorOf(n, names)), n, ' ', h('b', null, v + '%')));
  }
  for (const [n, v] of mirrored) {
    legend.append(h('span', {class: 'item'}, dot(colorOf(n, names), true), 'mirror → ' + n, ' ', h('b', null, v + '%')));
  }
  wrap.append(legend);
  return wrap;
}
