// Package gateway is plumbline's scoring data plane: an http.Handler that
// authenticates a scoring request, picks a deployment (traffic split, the
// azureml-model-deployment header, mirroring), admits it into that
// deployment's bounded FIFO queue, hands it to the least-loaded ready instance
// and proxies it there, answering with Azure ML's status codes.
//
// The request path:
//
//	ServeHTTP
//	  → route   (path /endpoints/<e>/score or host <e>.<domain>/score; one snapshot per request)
//	  → auth    (key: constant-time compare; aml_token: TokenVerifier; aad_token: OIDCVerifier)
//	  → split   (weighted random, header override, mirror copy through a bounded queue)
//	  → pool    (admission ≤ 2 × max_concurrent × ready instances, FIFO queue, least-loaded slot)
//	  → proxy   (its own HTTP/1.1 client on the request's goroutine, upstream.go and
//	             forward.go; httputil.ReverseProxy for upgrades and streamed bodies)
//	  → metrics + one access-log line (encoded without allocating, written in batches)
//
// plumbline serve --http1 fast puts internal/gateway/h1 between the
// listener and this handler for plain-HTTP/1.1 scoring requests (Scoring
// says which): its own connection loop instead of net/http's server.
//
// The control plane owns the routing table: it builds a Snapshot on every
// change and calls Gateway.Update, which swaps it in atomically. Per-deployment
// pools (queues, in-flight counts) live across snapshots, so a swap never drops
// an in-flight or queued request.
//
// Safe rollout (safety.go, shadow.go, capture.go, replay.go): per-epoch
// figures for rollout gates and a hold on a rollout candidate's sample, the
// comparison of mirrored answers off the request goroutine, and sampled,
// redacted request/response capture through a bounded queue.
//
// This package must not import the store, the registry, a driver, the
// reconciler or the API server; of plumbline's own packages it may import only
// internal/auth, internal/tlsca and the leaves internal/contract,
// internal/compare, internal/figures and internal/redact. deps_test.go
// enforces it.
package gateway
