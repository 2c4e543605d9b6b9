// Test: send a JSON request to the endpoint the way a client application
// does (POST to its scoring URI with the endpoint's key or an aml_token) and
// show status, latency, the headers that matter and the body.

import {api, score, scoringURL} from '../api.js';
import {h, replace, errorBox} from '../dom.js';
import {prettyJSON} from '../json.js';

const IRIS_SAMPLE = {sepal_length: [6.7], sepal_width: [3.3], petal_length: [5.7], petal_width: [2.5]};

// SHOWN_HEADERS are the response headers worth reading, in this order.
const SHOWN_HEADERS = [
  'x-request-id', 'x-ms-client-request-id', 'azureml-model-deployment',
  'ms-azureml-model-error-statuscode', 'ms-azureml-model-error-reason',
  'retry-after', 'content-type',
];

const storageKey = (endpoint) => 'plumbline.studio.request.' + endpoint;

// initialRequest is the last request sent to this endpoint from this
// browser, else the iris sample when the endpoint serves an iris model,
// else an empty object.
function initialRequest(ep, deps) {
  const last = localStorage.getItem(storageKey(ep.name));
  if (last) return last;
  const looksIris = /iris/i.test(ep.name) || deps.some((d) => /iris/i.test(JSON.stringify(d.model || '')));
  return looksIris ? prettyJSON(IRIS_SAMPLE) : '{}';
}

export async function render(panel, ctx, view) {
  const {ep, deps} = ctx;
  const textarea = h('textarea', {id: 'test-input', name: 'test-input', rows: '10', spellcheck: 'false',
    autocomplete: 'off', 'aria-describedby': 'test-input-error', value: initialRequest(ep, deps)});
  const inputError = h('div', {id: 'test-input-error', class: 'alert', role: 'alert'});
  const picker = h('select', {id: 'test-deployment', name: 'test-deployment'},
    h('option', {value: ''}, 'Let traffic decide'),
    deps.map((d) => h('option', {value: d.name}, d.name)));
  let aadInput = null;
  if (ep.auth_mode === 'aad_token') {
    aadInput = h('input', {id: 'test-aad', type: 'password', autocomplete: 'off', spellcheck: 'false'});
  }
  const send = h('button', {type: 'submit', class: 'btn btn-primary', id: 'test-send'}, 'Test');
  const format = h('button', {type: 'button', class: 'btn', id: 'test-format'}, 'Format JSON');
  const result = h('div', {id: 'test-result', 'aria-live': 'polite'},
    h('p', {class: 'muted'}, 'Send a request to see the status, latency, headers and the model’s answer here.'));

  const form = h('form', {class: 'stack test-input', novalidate: true},
    h('div', {class: 'field'},
      h('label', {for: 'test-input'}, 'Input data to rest real-time endpoint'),
      textarea,
      inputError),
    h('div', {class: 'fields-row'},
      h('div', {class: 'field'},
        h('label', {for: 'test-deployment'}, 'Deployment'),
        picker,
        h('span', {class: 'hint'}, 'A named deployment is sent as azureml-model-deployment.')),
      aadInput ? h('div', {class: 'field'}, h('label', {for: 'test-aad'}, 'Microsoft Entra token'), aadInput) : null),
    h('div', {class: 'btn-row'}, send, format));

  replace(panel, h('div', {class: 'cols cols-even'},
    h('div', {class: 'card'},
      h('div', {class: 'card-head'}, h('h2', null, 'Request'),
        h('code', {class: 'muted small', title: 'POST ' + scoringURL(ep.name)}, 'POST /endpoints/' + ep.name + '/score')),
      form),
    h('div', {class: 'card'}, h('div', {class: 'card-head'}, h('h2', null, 'Response')), result)));

  const parseInput = () => {
    try {
      JSON.parse(textarea.value);
      textarea.removeAttribute('aria-invalid');
      inputError.className = 'alert';
      inputError.textContent = '';
      return true;
    } catch (err) {
      textarea.setAttribute('aria-invalid', 'true');
      inputError.className = 'alert alert-error';
      replace(inputError, h('strong', null, 'Not sent: the input is not valid JSON. '), err.message);
      return false;
    }
  };

  format.addEventListener('click', () => {
    if (parseInput()) textarea.value = prettyJSON(JSON.parse(textarea.value));
  });

  let keyCache = null;
  let tokenCache = null;
  const credential = async () => {
    switch (ep.auth_mode) {
      case 'key':
        keyCache = keyCache || (await api.listKeys(ep.name, {signal: view.signal})).primaryKey;
        return keyCache;
      case 'aml_token':
        if (!tokenCache || Date.now() > Date.parse(tokenCache.refreshAfterTimeUtc)) {
          tokenCache = await api.token(ep.name, {signal: view.signal});
        }
        return tokenCache.accessToken;
      default:
        return aadInput ? aadInput.value.trim() : '';
    }
  };

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!parseInput()) {
      textarea.focus();
      return;
    }
    const body = textarea.value;
    localStorage.setItem(storageKey(ep.name), body);
    send.disabled = true;
    replace(result, h('p', {class: 'loading'}, 'Sending…'));
    try {
      const cred = await credential();
      const res = await score(ep.name, body, {credential: cred, deployment: picker.value, signal: view.signal});
      replace(result, renderResult(res));
    } catch (err) {
      if (err.name === 'AbortError' || err.unauthorized) return;
      replace(result, errorBox(err, err.status !== undefined ? 'Could not get a credential' : 'The request failed'));
    } finally {
      send.disabled = false;
    }
  });
}

// HTTP/2 answers carry no reason phrase; these are the codes the gateway uses.
const STATUS_TEXT = {
  200: 'OK', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 408: 'Request Timeout',
  413: 'Payload Too Large', 422: 'Unprocessable Entity', 424: 'Failed Dependency', 429: 'Too Many Requests',
  500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
};

function renderResult(res) {
  const ok = res.status >= 200 && res.status < 300;
  const dep = res.headers.get('azureml-model-deployment');
  const modelCode = res.headers.get('ms-azureml-model-error-statuscode');
  let bodyText = res.text;
  try {
    bodyText = prettyJSON(JSON.parse(res.text));
  } catch {
    // not JSON: show as received
  }
  const rows = SHOWN_HEADERS.filter((k) => res.headers.has(k)).map((k) => h('tr', null, h('td', null, k), h('td', null, res.headers.get(k))));
  return h('div', {class: 'stack'},
    h('div', {class: 'result-line'},
      h('span', {class: 'status-code ' + (ok ? 'ok' : 'bad'), id: 'test-status'}, `${res.status} ${res.statusText || STATUS_TEXT[res.status] || ''}`.trim()),
      h('span', {class: 'muted', id: 'test-latency'}, `${Math.round(res.ms)} ms`),
      dep ? h('span', {class: 'muted'}, 'answered by ', h('b', null, dep)) : null),
    modelCode ? h('div', {class: 'alert alert-warn'},
      `The model answered ${modelCode} ${res.headers.get('ms-azureml-model-error-reason') || ''}; the gateway reports it as ${res.status}.`) : null,
    rows.length ? h('div', null,
      h('h3', {class: 'small muted'}, 'Headers'),
      h('table', {class: 'table headers'}, h('tbody', null, rows))) : null,
    h('div', null,
      h('h3', {class: 'small muted'}, 'Body'),
      h('pre', {class: 'body', id: 'test-response', tabindex: '0'}, bodyText || '(empty)')));
}
