// Logs: the console output of a deployment's instances (what
// `online-deployment get-logs` prints): the last N lines, or followed live
// through a streaming response read as it arrives, until Stop.

import {api} from '../api.js';
import {h, replace, errorBox} from '../dom.js';

// MAX_CHARS bounds what the page keeps of a followed log.
const MAX_CHARS = 400_000;

export async function render(panel, ctx, view) {
  const {ep, deps} = ctx;
  if (!deps.length) {
    replace(panel, h('div', {class: 'card empty'}, h('h2', null, 'No deployments'), h('p', null, 'Logs appear once a deployment runs.')));
    return;
  }
  const depSelect = h('select', {id: 'logs-deployment', name: 'logs-deployment'}, deps.map((d) => h('option', {value: d.name}, d.name)));
  const instSelect = h('select', {id: 'logs-instance', name: 'logs-instance'});
  const lines = h('input', {id: 'logs-lines', name: 'logs-lines', type: 'number', min: '1', max: '10000', step: '1', value: '200', inputmode: 'numeric'});
  const show = h('button', {type: 'submit', class: 'btn btn-primary', id: 'logs-show'}, 'Show logs');
  const follow = h('button', {type: 'button', class: 'btn', id: 'logs-follow'}, 'Follow');
  const stop = h('button', {type: 'button', class: 'btn', id: 'logs-stop', disabled: true}, 'Stop');
  const state = h('span', {class: 'follow-state', role: 'status', 'aria-live': 'polite'});
  const out = h('pre', {class: 'logs', id: 'logs-output', tabindex: '0', 'aria-label': 'Log lines'});
  const error = h('div');

  const fillInstances = () => {
    const d = deps.find((x) => x.name === depSelect.value) || deps[0];
    replace(instSelect, h('option', {value: ''}, 'All instances'), (d.instances || []).map((i) => h('option', {value: i.name}, i.name)));
  };
  fillInstances();
  depSelect.addEventListener('change', () => { fillInstances(); load(false); });
  instSelect.addEventListener('change', () => load(false));

  const form = h('form', {class: 'fields-row', novalidate: true},
    h('div', {class: 'field'}, h('label', {for: 'logs-deployment'}, 'Deployment'), depSelect),
    h('div', {class: 'field'}, h('label', {for: 'logs-instance'}, 'Instance'), instSelect),
    h('div', {class: 'field'}, h('label', {for: 'logs-lines'}, 'Lines'), lines),
    h('div', {class: 'btn-row'}, show, follow, stop, state));
  replace(panel, h('div', {class: 'card'}, form, error, out));

  let running = null; // the AbortController of the stream being read
  let retry = null; // the timer of a follow waiting to reconnect
  const halt = () => {
    clearTimeout(retry);
    retry = null;
    if (running) running.abort();
    running = null;
  };
  view.onDispose(halt);

  const setFollowing = (on) => {
    follow.disabled = on;
    stop.disabled = !on;
    state.className = 'follow-state' + (on ? ' on' : '');
    state.textContent = on ? 'Following' : '';
  };

  // load shows the last lines, or follows them when followIt. A followed
  // stream cut by the network (the browser's network changed, the server
  // restarted) is followed again, up to MAX_RETRIES times in a row.
  const MAX_RETRIES = 5;
  async function load(followIt, attempt = 0) {
    halt();
    const ac = new AbortController();
    running = ac;
    replace(error);
    setFollowing(followIt);
    const n = Math.min(10000, Math.max(1, parseInt(lines.value, 10) || 200));
    let text = '';
    const atBottom = () => out.scrollHeight - out.scrollTop - out.clientHeight < 24;
    const put = () => {
      const stick = atBottom();
      out.textContent = text || '(no log lines yet)';
      if (stick || !followIt) out.scrollTop = out.scrollHeight;
    };
    out.textContent = 'Loading…';
    try {
      const res = await api.logs(ep.name, depSelect.value, {lines: n, instance: instSelect.value, follow: followIt}, {signal: ac.signal});
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      put();
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        attempt = 0;
        text += value;
        if (text.length > MAX_CHARS) text = text.slice(text.indexOf('\n', text.length - MAX_CHARS) + 1);
        put();
      }
      if (followIt && running === ac) state.textContent = 'The server ended the stream';
    } catch (err) {
      if (err.name === 'AbortError' || err.unauthorized) return;
      if (followIt && running === ac && err instanceof TypeError && attempt < MAX_RETRIES) {
        // A network error (fetch reports it as a TypeError): Stop stays
        // enabled and cancels the reconnection.
        running = null;
        state.textContent = 'Reconnecting…';
        retry = setTimeout(() => load(true, attempt + 1), 1000 * (attempt + 1));
        return;
      }
      if (running === ac) {
        replace(error, errorBox(err, 'Could not read the logs'));
        if (followIt) state.textContent = 'Disconnected';
      }
      if (!text) out.textContent = '';
    } finally {
      if (running === ac) {
        running = null;
        follow.disabled = false;
        stop.disabled = true;
        state.classList.remove('on');
      }
    }
  }

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    load(false);
  });
  follow.addEventListener('click', () => load(true));
  stop.addEventListener('click', () => {
    halt();
    setFollowing(false);
    state.textContent = 'Stopped';
    follow.focus();
  });

  load(false);
}
