// Package autoscale chooses how many instances an autoscaled deployment
// runs (scale_settings type target_utilization), on the replica that leads,
// next to the reconciler. Its algorithm is Knative's KPA applied to
// requests in flight and queued: the average concurrency over a stable
// window over the per-instance target decides the count; a burst over a
// short panic window scales out at once and holds the count for a stable
// window; a lower count applies only after the scale-down delay; with
// min_instances 0 the last instance stops after a period without requests,
// and the first request that waits brings one back.
//
// Its input is the demand every gateway reports through the shared store
// (requests in flight and queued, cumulative arrivals and busy
// request-seconds per deployment), summed over the gateways, so several
// gateways scale one deployment together. Its output is the desired count
// (kept in the store with the reason, shown by the API), an event per
// change ("scaled 2 → 3: utilization 92 % > 70 %") and Prometheus metrics;
// the reconciler starts and stops instances to match.
//
// This package may import store, resolve and promreg; it must not import the
// gateway, the reconciler, a driver or the API server.
package autoscale
