// The studio's only way to the server: the control-plane API under /api/v1,
// /metrics and the scoring gateway, all on the page's own origin. The admin
// token lives in sessionStorage (gone when the tab closes) and is sent as
// "Authorization: Bearer"; a 401 ends the session and sends the user back to
// the sign-in form.

const TOKEN_KEY = 'plumbline.studio.token';

export const session = {
  token() {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  },
  set(token) {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

// ApiError carries the {error: {code, message, details}} body of a failed
// call. unauthorized marks a 401 (the page has already been replaced by the
// sign-in form, so callers render nothing for it).
export class ApiError extends Error {
  constructor(status, code, message, details = []) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
    this.unauthorized = status === 401;
  }
}

let onUnauthorized = () => {};

// setUnauthorizedHandler registers what happens when the server refuses
// the token (app.js shows the sign-in form).
export function setUnauthorizedHandler(f) {
  onUnauthorized = f;
}

async function errorFrom(res) {
  const text = await res.text().catch(() => '');
  try {
    const body = JSON.parse(text);
    if (body && body.error && body.error.message) {
      return new ApiError(res.status, body.error.code || '', body.error.message, body.error.details || []);
    }
  } catch {
    // not JSON: fall through
  }
  const msg = text.trim() || `${res.status} ${res.statusText}`.trim();
  return new ApiError(res.status, String(res.status), msg);
}

// request calls path on this origin with the admin token. It resolves to
// the parsed JSON (or the Response itself with {raw: true}) and rejects with
// an ApiError for a non-2xx answer.
export async function request(method, path, {body, signal, raw = false, token} = {}) {
  const headers = {Authorization: 'Bearer ' + (token ?? session.token())};
  let payload;
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = typeof body === 'string' ? body : JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, {method, headers, body: payload, signal, cache: 'no-store'});
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'NetworkError', `cannot reach the plumbline server (${err.message}); is plumbline serve still running?`);
  }
  if (!res.ok) {
    const err = await errorFrom(res);
    if (res.status === 401 && token === undefined) {
      session.clear();
      onUnauthorized(err);
    }
    throw err;
  }
  if (raw) return res;
  if (res.status === 202 || res.status === 204) return null;
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

const enc = encodeURIComponent;
const V1 = '/api/v1';

export const api = {
  server: (o) => request('GET', `${V1}/server`, o),
  endpoints: (o) => request('GET', `${V1}/endpoints`, o),
  endpoint: (name, o) => request('GET', `${V1}/endpoints/${enc(name)}`, o),
  putEndpoint: (name, doc, o) => request('PUT', `${V1}/endpoints/${enc(name)}`, {...o, body: doc}),
  listKeys: (name, o) => request('POST', `${V1}/endpoints/${enc(name)}/listkeys`, o),
  regenerateKey: (name, keyType, o) => request('POST', `${V1}/endpoints/${enc(name)}/regenerateKeys`, {...o, body: {keyType}}),
  token: (name, o) => request('POST', `${V1}/endpoints/${enc(name)}/token`, o),
  deployments: (name, o) => request('GET', `${V1}/endpoints/${enc(name)}/deployments`, o),
  snippets: (name, o) => request('GET', `${V1}/endpoints/${enc(name)}/snippets`, o),
  logs(endpoint, deployment, {lines, instance, follow} = {}, o) {
    const q = new URLSearchParams();
    if (lines) q.set('lines', String(lines));
    if (instance) q.set('instance', instance);
    if (follow) q.set('follow', 'true');
    return request('GET', `${V1}/endpoints/${enc(endpoint)}/deployments/${enc(deployment)}/logs?${q}`, {...o, raw: true});
  },
  events: (endpoint, limit, o) => request('GET', `${V1}/events?endpoint=${enc(endpoint)}&limit=${limit}`, o),
  rollouts: (name, o) => request('GET', `${V1}/endpoints/${enc(name)}/rollouts`, o),
  rollout: (name, deployment, o) => request('GET', `${V1}/endpoints/${enc(name)}/deployments/${enc(deployment)}/rollout`, o),
  rolloutAction: (name, deployment, action, o) => request('POST', `${V1}/endpoints/${enc(name)}/deployments/${enc(deployment)}/rollout/${enc(action)}`, o),
  compare: (name, o) => request('GET', `${V1}/endpoints/${enc(name)}/compare?diffs=3`, o),
  trafficHistory: (name, limit, o) => request('GET', `${V1}/endpoints/${enc(name)}/traffic-history?limit=${limit}`, o),
  models: (o) => request('GET', `${V1}/models?include_archived=true`, o),
  model: (name, version, o) => request('GET', `${V1}/models/${enc(name)}/versions/${enc(version)}`, o),
  manifest: (digest, o) => request('GET', `${V1}/artifacts/${enc(digest)}/manifest`, o),
  async metrics(o) {
    const res = await request('GET', '/metrics', {...o, raw: true});
    return res.text();
  },
};

// redeemSignInLink signs the tab in with a one-time link's code
// (`plumbline up` prints the link: /studio/#signin=<code>&to=/endpoints/x).
// It removes the code from the address bar and history first, then trades
// it for the admin token. It returns the hash to show, and a message when
// the link no longer works.
export async function redeemSignInLink() {
  const m = /^#signin=([A-Za-z0-9_-]+)(?:&to=(\/[^&#]*))?$/.exec(location.hash);
  if (!m) return {};
  const next = '#' + (m[2] ? m[2] : '/endpoints');
  history.replaceState(null, '', location.pathname + location.search + next);
  try {
    const res = await fetch(`${V1}/signin`, {method: 'POST', headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({code: m[1]}), cache: 'no-store'});
    if (res.ok) {
      session.set((await res.json()).token);
      return {};
    }
    return {message: (await errorFrom(res)).message};
  } catch (err) {
    return {message: `cannot reach the plumbline server (${err.message})`};
  }
}

// editableEndpoint is the document PUT /api/v1/endpoints/{name} takes,
// built from what GET returns (the same fields `online-endpoint update`
// keeps), with the given traffic and mirror.
export function editableEndpoint(ep, traffic, mirror) {
  const doc = {name: ep.name, auth_mode: ep.auth_mode};
  if (ep.description) doc.description = ep.description;
  if (ep.tags && Object.keys(ep.tags).length) doc.tags = ep.tags;
  if (ep.properties && Object.keys(ep.properties).length) doc.properties = ep.properties;
  doc.traffic = nonZero(traffic);
  doc.mirror_traffic = nonZero(mirror);
  return doc;
}

function nonZero(m) {
  const out = {};
  for (const [k, v] of Object.entries(m || {})) if (v > 0) out[k] = v;
  return out;
}

// scoringURL is the endpoint's scoring URI on this page's origin, so the
// browser never needs CORS: the gateway routes /endpoints/<name>/score on
// the same listener as the API.
export function scoringURL(endpoint) {
  return `${location.origin}/endpoints/${enc(endpoint)}/score`;
}

// score sends body to the endpoint as a client application would, with the
// endpoint's credential, and reports status, latency, headers and body.
export async function score(endpoint, body, {credential, deployment, signal} = {}) {
  const headers = {'Content-Type': 'application/json'};
  if (credential) headers.Authorization = 'Bearer ' + credential;
  if (deployment) headers['azureml-model-deployment'] = deployment;
  const started = performance.now();
  const res = await fetch(scoringURL(endpoint), {method: 'POST', headers, body, signal, cache: 'no-store'});
  const text = await res.text();
  const ms = performance.now() - started;
  return {status: res.status, statusText: res.statusText, ok: res.ok, ms, headers: res.headers, text};
}
