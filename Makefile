# plumbline — make help lists the targets.
GO        ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
BIN       ?= bin/plumbline
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/plumbline/plumbline/internal/cli.Version=$(VERSION)
# Tests that start R or the built binary need time on a 2-core machine.
TESTFLAGS ?= -timeout 30m

.PHONY: help build test test-short test-loaded fuzz soak bench bench-smoke lint fmt demo demo-down clean

help: ## list the targets
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z_-]+:.*## /{printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/plumbline
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/plumbline

# The PostgreSQL tests use PLUMBLINE_TEST_POSTGRES, or a private cluster that
# scripts/test-postgres.sh starts on 127.0.0.1:55432 (stop it with
# `bash scripts/test-postgres.sh stop`).
# Chromium aborts requests in flight when the host's network interfaces change,
# which the container tests do (a veth per container): the browser test runs
# after the rest.
test: build ## run every test (what CI runs): unit, real SQLite and PostgreSQL, real R, end to end
	$(GO) vet ./...
	PLUMBLINE_TEST_POSTGRES=$${PLUMBLINE_TEST_POSTGRES:-$$(bash scripts/test-postgres.sh)} \
	PLUMBLINE_BIN=$(abspath $(BIN)) $(GO) test $(TESTFLAGS) $$($(GO) list ./... | grep -v /test/browser$$)
	PLUMBLINE_BIN=$(abspath $(BIN)) $(GO) test $(TESTFLAGS) ./test/browser

test-loaded: build ## make test RUNS (3) times in a row, uncached, while stress -c LOAD (2) runs; stops at the first failure
	bash scripts/test-under-load.sh

fuzz: ## run every fuzz target for FUZZTIME each (default 5s; CI runs it)
	GO=$(GO) bash scripts/fuzz.sh

SOAK_DURATION ?= 10m
soak: build ## soak (outside CI): SOAK_DURATION (10m) of load and changes on the iris example; failures, RSS and fds at start and end
	$(GO) run ./bench/cmd/plumbline-soak -plumbline $(abspath $(BIN)) -duration $(SOAK_DURATION)

test-short: ## fast tests only (no R, no end-to-end)
	$(GO) test -short ./...

# BENCHFLAGS passes options to the harness, e.g. BENCHFLAGS='-only gateway -repeats 5'.
bench: build ## reproduce docs/benchmarks.md: vs nginx and plumber, overload, rollout, deploy, memory, containers, lean R runtime, autoscaling (tens of minutes; quiet machine)
	PLUMBLINE_BIN=$(abspath $(BIN)) $(GO) run ./bench/cmd/plumbline-bench -out docs/benchmarks.md $(BENCHFLAGS)

bench-smoke: build ## run every benchmark scenario for ~1 s to prove the harness works (numbers mean nothing)
	PLUMBLINE_BIN=$(abspath $(BIN)) $(GO) run ./bench/cmd/plumbline-bench -smoke $(BENCHFLAGS)

lint: ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "run gofmt -w"; exit 1)
	$(GO) vet ./...

# LISTEN is the address of the server demo starts when none runs, e.g.
# make demo LISTEN=127.0.0.1:9443 (default 127.0.0.1:8443).
LISTEN    ?=

demo: ## on a fresh machine: install R from Debian, build, train the iris example, deploy it and score it (LISTEN=host:port to pick the port)
	bash scripts/install-deps.sh
	$(MAKE) --no-print-directory build
	Rscript examples/r-iris/train.R
	$(BIN) up examples/r-iris $(if $(LISTEN),--listen $(LISTEN))

demo-down: ## remove what demo deployed and stop the server it started
	$(BIN) down examples/r-iris --stop-server

fmt: ## format the code
	gofmt -w $$(git ls-files '*.go')

clean: ## remove build output
	rm -rf bin
