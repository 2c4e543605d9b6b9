// Package rworker is plumbline's lean R runtime: a supervisor, run as
// `plumbline rworker` by the process driver in place of plumber's own
// server, that serves one instance of an R plumber deployment.
//
// The supervisor starts R once (the loaded session), which plumbs the
// deployment's plumber.R (so its top-level code, the model's readRDS
// included, runs once) and then forks workers from itself on request:
// copy-on-write, so the model's memory is shared, and a worker is ready in
// milliseconds rather than after an R start-up. The supervisor serves HTTP on
// the instance's address and hands each request to an idle worker over a
// pair of named pipes in a compact framing (frame.go); the worker runs it
// through plumber's own router (lean.R) and answers the same way. No TCP,
// no httpuv and no HTTP parsing happen in R.
//
// The supervisor also owns what plumber's single R thread cannot do while it
// computes: liveness and readiness are answered from the workers' state
// (never queued behind a prediction), a request past its timeout or a worker
// that dies costs that one request and the worker is forked again, and
// workers are recycled after a number of requests or past a memory bound.
// A small control socket in the run folder reports the workers' state and
// resizes the pool.
//
// What the lean runtime cannot serve is found before start by
// plumber.LeanBlockers (the deployment then runs on plumber's own server);
// what only the loaded session can see (an exit hook) makes the supervisor
// replace itself with plumber's own server (Main).
//
// This package imports only package plumber of plumbline; the process driver
// imports it to build the command line.
package rworker
