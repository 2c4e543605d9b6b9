// Checks the studio's own arithmetic in the browser that runs it: the
// Prometheus parser, rates and quantiles (metrics page), the traffic rules
// (traffic editor) and the JSON formatter (Test tab). The test evaluates
// this file in the signed-in page; it resolves to "" or to the failures,
// one per line.
(async () => {
  const prom = await import('./js/prom.js');
  const {checkTraffic} = await import('./js/pages/details.js');
  const {prettyJSON} = await import('./js/json.js');
  const fails = [];
  const eq = (name, got, want) => {
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      fails.push(name + ': got ' + JSON.stringify(got) + ', want ' + JSON.stringify(want));
    }
  };

  const text = [
    '# HELP plumbline_requests_total Scoring requests.',
    '# TYPE plumbline_requests_total counter',
    'plumbline_requests_total{code="200",deployment="blue",endpoint="E1",model_code="200"} 7',
    'plumbline_requests_total{code="424",deployment="blue",endpoint="E1",model_code="400"} 3',
    'plumbline_requests_total{code="200",deployment="blue",endpoint="other",model_code="200"} 99',
    'plumbline_request_duration_seconds_bucket{deployment="blue",endpoint="E1",le="0.1"} 5',
    'plumbline_request_duration_seconds_bucket{deployment="blue",endpoint="E1",le="0.2"} 10',
    'plumbline_request_duration_seconds_bucket{deployment="blue",endpoint="E1",le="+Inf"} 10',
    'plumbline_ready_instances{deployment="blue",endpoint="E1"} 2',
    'go_goroutines 42',
  ].join('\n');
  const s = prom.summarize(prom.parse(text), 'e1');
  eq('deployments of E1', Object.keys(s), ['blue']);
  eq('requests', s.blue.requests, 10);
  eq('codes', s.blue.codes, {'200/200': 7, '424/400': 3});
  eq('ready', s.blue.ready, 2);
  eq('p50', prom.quantile(0.5, s.blue.buckets), 0.1);
  eq('p99', Number(prom.quantile(0.99, s.blue.buckets).toFixed(4)), 0.198);
  eq('no observations', prom.quantile(0.5, [[0.1, 0], [Infinity, 0]]), null);
  eq('rank in +Inf', prom.quantile(0.99, [[0.1, 1], [Infinity, 10]]), 0.1);
  eq('rate', prom.rate(10, 16, 2), 3);
  eq('rate after a reset', prom.rate(10, 4, 2), 2);
  eq('bucket delta', prom.bucketDelta([[0.1, 2], [0.2, 3]], [[0.1, 5], [0.2, 9]]), [[0.1, 3], [0.2, 6]]);
  eq('escaped label', prom.parse('m{a="x\\"y\\\\z",b="2"} 1.5')[0], {name: 'm', labels: {a: 'x"y\\z', b: '2'}, value: 1.5});

  eq('90/10', checkTraffic({blue: 90, green: 10}, '', 0).errors, []);
  eq('no traffic', checkTraffic({blue: 0, green: 0}, '', 0).errors, []);
  eq('95 sum', checkTraffic({blue: 90, green: 5}, '', 0).sum, 95);
  eq('95 refused', checkTraffic({blue: 90, green: 5}, '', 0).errors.length, 1);
  eq('not a number', checkTraffic({blue: NaN, green: 100}, '', 0).errors.length, 1);
  eq('mirror 10 to green', checkTraffic({blue: 100, green: 0}, 'green', 10).errors, []);
  eq('mirror over 50', checkTraffic({blue: 100, green: 0}, 'green', 60).errors.length, 1);
  eq('mirror to live', checkTraffic({blue: 100, green: 0}, 'blue', 10).errors.length, 1);

  const scaling = await import('./js/pages/scaling.js');
  const auto = prom.summarize(prom.parse([
    'plumbline_desired_instances{deployment="auto",endpoint="E1"} 3',
    'plumbline_actual_instances{deployment="auto",endpoint="E1"} 2',
    'plumbline_autoscaler_panic{deployment="auto",endpoint="E1"} 1',
    'plumbline_cold_start_seconds_bucket{deployment="auto",endpoint="E1",le="0.1"} 1',
    'plumbline_cold_start_seconds_bucket{deployment="auto",endpoint="E1",le="1"} 3',
    'plumbline_cold_start_seconds_bucket{deployment="auto",endpoint="E1",le="+Inf"} 4',
    'plumbline_cold_start_seconds_sum{deployment="auto",endpoint="E1"} 4.2',
    'plumbline_cold_start_seconds_count{deployment="auto",endpoint="E1"} 4',
    'plumbline_capacity_wait_seconds_bucket{deployment="auto",endpoint="E1",le="0.5"} 2',
    'plumbline_capacity_wait_seconds_bucket{deployment="auto",endpoint="E1",le="+Inf"} 2',
    'plumbline_ready_instances{deployment="fixed",endpoint="E1"} 1',
  ].join('\n')), 'E1');
  eq('desired, actual, panic', [auto.auto.desired, auto.auto.actual, auto.auto.panic], [3, 2, 1]);
  eq('not autoscaled', [auto.fixed.desired, auto.fixed.actual], [null, null]);
  eq('cold starts', scaling.coldSummary(auto.auto), {count: 4, mean: 1.05, p50: 0.55});
  eq('no cold start', scaling.coldSummary(auto.fixed), null);
  eq('wait buckets', auto.auto.waitBuckets, [[0.5, 2], [Infinity, 2]]);
  eq('wait format', [scaling.fmtWait(0.0421), scaling.fmtWait(1.5), scaling.fmtWait(null)], ['42 ms', '1.50 s', '—']);

  eq('pretty', prettyJSON({a: [1, 2], b: {c: 'x'}, d: []}), '{\n  "a": [1, 2],\n  "b": {\n    "c": "x"\n  },\n  "d": []\n}');
  return fails.join('\n');
})()
