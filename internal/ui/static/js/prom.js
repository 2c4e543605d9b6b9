// Reading plumbline's /metrics (the Prometheus text exposition format) in
// the browser: a parser, a per-endpoint summary of one scrape, and the rate
// and quantile arithmetic Prometheus would do between two scrapes.

// parse returns the samples of a text exposition: {name, labels, value}.
// Comments, HELP and TYPE lines are skipped; timestamps are ignored.
export function parse(text) {
  const samples = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    let i = 0;
    while (i < line.length && line[i] !== '{' && line[i] !== ' ' && line[i] !== '\t') i++;
    const name = line.slice(0, i);
    const labels = {};
    if (line[i] === '{') {
      i++;
      for (;;) {
        while (line[i] === ' ' || line[i] === ',') i++;
        if (line[i] === '}') { i++; break; }
        const eq = line.indexOf('=', i);
        if (eq < 0 || line[eq + 1] !== '"') return samples; // malformed: stop here
        const key = line.slice(i, eq).trim();
        let j = eq + 2;
        let val = '';
        while (j < line.length && line[j] !== '"') {
          if (line[j] === '\\' && j + 1 < line.length) {
            const c = line[j + 1];
            val += c === 'n' ? '\n' : c;
            j += 2;
          } else {
            val += line[j++];
          }
        }
        labels[key] = val;
        i = j + 1;
      }
    }
    const rest = line.slice(i).trim().split(/\s+/)[0];
    samples.push({name, labels, value: number(rest)});
  }
  return samples;
}

function number(s) {
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  return Number(s);
}

// summarize extracts one endpoint's figures from a scrape, per deployment:
// requests (total), codes ({"200/200": n}, gateway code / model code),
// buckets ([[le, cumulative count]…] sorted by le), and the gauges ready,
// inflight and queue; for autoscaled deployments also desired and actual
// instances (null when the autoscaler does not report them) and panic,
// and the cold-start and capacity-wait histograms (coldBuckets, coldCount,
// coldSum, waitBuckets).
export function summarize(samples, endpoint) {
  const want = endpoint.toLowerCase();
  const deps = {};
  const dep = (name) => (deps[name] ||= {requests: 0, codes: {}, buckets: [], ready: 0, inflight: 0, queue: 0,
    desired: null, actual: null, panic: 0, coldBuckets: [], coldCount: 0, coldSum: 0, waitBuckets: []});
  for (const s of samples) {
    if (!s.labels.endpoint || s.labels.endpoint.toLowerCase() !== want || !s.labels.deployment) continue;
    const d = s.labels.deployment;
    switch (s.name) {
      case 'plumbline_requests_total': {
        const x = dep(d);
        x.requests += s.value;
        const key = `${s.labels.code}/${s.labels.model_code || ''}`;
        x.codes[key] = (x.codes[key] || 0) + s.value;
        break;
      }
      case 'plumbline_request_duration_seconds_bucket':
        dep(d).buckets.push([number(s.labels.le), s.value]);
        break;
      case 'plumbline_ready_instances':
        dep(d).ready = s.value;
        break;
      case 'plumbline_inflight_requests':
        dep(d).inflight = s.value;
        break;
      case 'plumbline_queue_depth':
        dep(d).queue = s.value;
        break;
      case 'plumbline_desired_instances':
        dep(d).desired = s.value;
        break;
      case 'plumbline_actual_instances':
        dep(d).actual = s.value;
        break;
      case 'plumbline_autoscaler_panic':
        dep(d).panic = s.value;
        break;
      case 'plumbline_cold_start_seconds_bucket':
        dep(d).coldBuckets.push([number(s.labels.le), s.value]);
        break;
      case 'plumbline_cold_start_seconds_count':
        dep(d).coldCount = s.value;
        break;
      case 'plumbline_cold_start_seconds_sum':
        dep(d).coldSum = s.value;
        break;
      case 'plumbline_capacity_wait_seconds_bucket':
        dep(d).waitBuckets.push([number(s.labels.le), s.value]);
        break;
    }
  }
  for (const x of Object.values(deps)) {
    for (const b of [x.buckets, x.coldBuckets, x.waitBuckets]) b.sort((a, c) => a[0] - c[0]);
  }
  return deps;
}

// rate is the per-second increase of a counter between two readings; a
// counter that went down was reset (the server restarted), so the newer
// reading is the whole increase, as Prometheus assumes.
export function rate(older, newer, seconds) {
  if (!(seconds > 0)) return null;
  const inc = newer >= older ? newer - older : newer;
  return inc / seconds;
}

// bucketDelta subtracts two cumulative bucket lists with the same bounds.
export function bucketDelta(older, newer) {
  const before = new Map(older.map(([le, n]) => [le, n]));
  return newer.map(([le, n]) => {
    const o = before.get(le) || 0;
    return [le, n >= o ? n - o : n];
  });
}

// quantile is Prometheus' histogram_quantile: q (0–1) of cumulative
// buckets [[le, count]…], interpolating linearly inside the bucket; null
// when there were no observations. A rank in the +Inf bucket answers the
// largest finite bound.
export function quantile(q, buckets) {
  if (!buckets.length) return null;
  const total = buckets[buckets.length - 1][1];
  if (!(total > 0)) return null;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, count] of buckets) {
    if (count >= rank) {
      if (le === Infinity) return prevLe;
      if (count === prevCount) return le;
      return prevLe + (le - prevLe) * ((rank - prevCount) / (count - prevCount));
    }
    prevLe = le;
    prevCount = count;
  }
  return prevLe;
}
