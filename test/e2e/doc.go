// Package e2e drives the built `plumbline` binary the way a user does: it
// starts `plumbline serve` on a private data dir, runs CLI commands against
// it, scores requests through the gateway over TLS and kills processes with
// signals, then checks what a user would see (exit codes, stdout, stderr,
// HTTP answers, files on disk, processes left running).
//
// The tests live in _test.go files; this package has no API. It imports
// nothing from plumbline: the binary is its only way in. Tests that need R
// skip when Rscript or the plumber package is missing; `go test -short`
// skips them all.
//
// PLUMBLINE_BIN names the binary to test (`make test` sets it); otherwise
// TestMain builds ./cmd/plumbline into a temporary folder.
package e2e
