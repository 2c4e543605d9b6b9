package harness

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/bench/internal/load"
	"github.com/plumbline/plumbline/bench/internal/serve"
)

// Container scenario names and settings.
const (
	cProcess = "process"
	cDocker  = "docker"
	// benchImage is the iris example's docker-context built by the harness.
	benchImage       = "plumbline-bench/r-iris:1"
	containersBench  = "cbench"
	containerRTarget = 2 * time.Second
	containerRPSGoal = 0.9
)

// containers is scenario 7: the iris example deployed by `plumbline serve
// --driver docker` (the seed's docker-context built as the image, its
// start_plumber.R as the command) next to the same example under the
// process driver: create → first 200 and Started → Ready for each, then
// requests/s through the gateway at concurrency 1, in alternating order.
func (e *env) containers(ctx context.Context) error {
	r := &ContainersResult{
		FirstOK: map[string][]time.Duration{}, StartToReady: map[string][]time.Duration{},
		Runs: map[string][]load.Stats{},
	}
	e.res.Containers = r
	host := e.cfg.DockerHost
	if host == "" {
		r.Skipped = "no container engine: give its Docker API address with -docker-host (or DOCKER_HOST, PLUMBLINE_TEST_DOCKER_HOST)"
		e.logf("containers: %s", r.Skipped)
		return nil
	}
	ie, err := e.iris(ctx)
	if err != nil {
		return err
	}
	servers := map[string]*serve.Server{}
	if servers[cProcess], err = e.serveHTTPS(ctx); err != nil {
		return err
	}
	if servers[cDocker], err = serve.Start(ctx, e.g, "plumbline-docker", e.cfg.Plumbline, filepath.Join(e.tmp, "data-docker"), false,
		"--driver", "docker", "--docker-host", host); err != nil {
		return err
	}
	ds := servers[cDocker]

	// The image: the example's docker-context with Debian packages (no
	// CRAN here), built through plumbline; cached by the engine's layers.
	dir, err := debianContext(filepath.Join(ie.Example, "docker-context"), filepath.Join(e.tmp, "docker-context"))
	if err != nil {
		return err
	}
	t0 := time.Now()
	if _, err := ds.CLI(ctx, "image", "build", dir, "-t", benchImage); err != nil {
		return err
	}
	r.Build = time.Since(t0)
	e.logf("containers: built %s in %s (layers the engine had are reused)", benchImage, fmtDur(r.Build))
	if _, err := ds.CLI(ctx, "model", "create", "--name", irisModel, "--version", "1", "--path", ie.Models, "-o", "json"); err != nil {
		return err
	}
	keys := map[string]string{}
	for v, s := range servers {
		if keys[v], err = e.createEndpoint(ctx, s, containersBench); err != nil {
			return err
		}
	}
	target := func(v, name string) load.Target {
		t := scoreTarget(servers[v], containersBench, keys[v], ie.Body)
		t.Header = t.Header.Clone()
		t.Header.Set("azureml-model-deployment", name)
		return t
	}

	// create → first 200, alternating; the first repeat's deployments stay
	// for the throughput runs.
	for rep := range e.cfg.Repeats {
		for _, v := range e.shuffled([]string{cProcess, cDocker}) {
			s, name := servers[v], fmt.Sprintf("iris-%d", rep+1)
			// Both run plumber's own server (the container's CMD is the
			// seed's start_plumber.R), so the difference is the container.
			extra := []string{"--no-wait"}
			if v == cDocker {
				extra = append(extra, "--set", "environment.image="+benchImage)
			} else {
				extra = append(extra, "--set", "plumbline.r_runtime=plumber")
			}
			client := &http.Client{Transport: load.NewTransport(s.ClientOptions(true)), Timeout: 5 * time.Second}
			start := time.Now()
			if _, err := createIris(ctx, s, ie, containersBench, name, 1, extra...); err != nil {
				return err
			}
			first, err := firstOK(ctx, client, target(v, name), 3*time.Minute)
			if err != nil {
				return fmt.Errorf("%s driver, deployment %s: %w", v, name, err)
			}
			if err := waitState(ctx, s.API, containersBench, name, api.StateSucceeded, time.Minute); err != nil {
				return err
			}
			r.FirstOK[v] = append(r.FirstOK[v], first.Sub(start))
			r.StartToReady[v] = append(r.StartToReady[v], tookFor(startToReady(ctx, s.API, containersBench, name), name+"-0"))
			e.logf("containers: %s driver, create → first 200 %s (Started → Ready %s)", v, fmtDur(first.Sub(start)), fmtDur(at(r.StartToReady[v], rep)))
			if rep > 0 {
				if _, err := s.CLI(ctx, "online-deployment", "delete", "--name", name, "--endpoint-name", containersBench, "--yes"); err != nil {
					return err
				}
			}
		}
	}

	// Requests/s through the gateway, one connection, alternating.
	for _, v := range []string{cProcess, cDocker} {
		cl := load.ClosedLoop{Targets: []load.Target{target(v, "iris-1")}, Conns: 1, Client: servers[v].ClientOptions(true)}
		if err := warmUp(ctx, "the "+v+" driver's deployment", cl, 300*time.Millisecond); err != nil {
			return err
		}
	}
	for rep := range e.cfg.Repeats {
		for _, v := range e.shuffled([]string{cProcess, cDocker}) {
			st := load.ClosedLoop{Targets: []load.Target{target(v, "iris-1")}, Conns: 1, Duration: e.cfg.RRun, Client: servers[v].ClientOptions(true)}.Run(ctx)
			r.Runs[v] = append(r.Runs[v], st)
			e.logf("containers rep %d, %-7s driver %7.1f req/s p50 %-9s p99 %-9s %s", rep+1, v, st.RPS, st.P50.Round(time.Microsecond), st.P99.Round(time.Microsecond), st.CodesString())
		}
	}
	return nil
}

// debianContext copies a docker-context folder into dst with its
// Dockerfile's install.packages() lines turned into Debian packages:
// randomForest becomes r-cran-randomforest; carrier (not in Debian, and
// not needed by the example's crate) is dropped.
func debianContext(src, dst string) (string, error) {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return "", err
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return "", err
	}
	for _, ent := range ents {
		b, err := os.ReadFile(filepath.Join(src, ent.Name()))
		if err != nil {
			return "", err
		}
		if ent.Name() == "Dockerfile" {
			var out []string
			for _, line := range strings.Split(string(b), "\n") {
				switch {
				case strings.Contains(line, "install.packages('carrier'"):
					continue
				case strings.Contains(line, "install.packages('randomForest'"):
					line = "RUN apt-get update && apt-get install -y --no-install-recommends r-cran-randomforest && apt-get clean && rm -rf /var/lib/apt/lists/*"
				}
				out = append(out, line)
			}
			b = []byte(strings.Join(out, "\n"))
		}
		if err := os.WriteFile(filepath.Join(dst, ent.Name()), b, 0o644); err != nil {
			return "", err
		}
	}
	return dst, nil
}

// containerVerdicts states scenario 7's targets: the container ready fast,
// and the gateway as fast in front of a container as in front of a process.
func containerVerdicts(r *Results, skip func(string, string)) []Verdict {
	readyTarget := fmt.Sprintf("containers: create → first 200 of the R example in a container ≤ %s", fmtDur(containerRTarget))
	rpsTarget := fmt.Sprintf("containers: requests/s through the gateway ≥ %.1f× the process driver's", containerRPSGoal)
	c := r.Containers
	switch {
	case c == nil:
		skip(readyTarget, "scenario 7 not run")
		skip(rpsTarget, "scenario 7 not run")
		return nil
	case c.Skipped != "":
		skip(readyTarget, c.Skipped)
		skip(rpsTarget, c.Skipped)
		return nil
	}
	var out []Verdict
	if d := c.FirstOK[cDocker]; len(d) > 0 {
		m := medianDur(d)
		v := Verdict{Target: readyTarget, Met: m <= containerRTarget,
			Figure: fmt.Sprintf("median %s (%s); container Started → Ready %s; process driver %s", fmtDur(m), joinDur(d),
				fmtDur(medianDur(c.StartToReady[cDocker])), fmtDur(medianDur(c.FirstOK[cProcess])))}
		if !v.Met {
			v.Limit = "the engine creates and starts the container (Podman: conmon, runc, the port forward) before R starts; R's own start is the rest." + busyNote(r)
		}
		out = append(out, v)
	}
	if pr, dk := pick(c.Runs[cProcess], rps), pick(c.Runs[cDocker], rps); len(pr) > 0 && len(dk) > 0 {
		m := medianF(ratios(dk, pr))
		v := Verdict{Target: rpsTarget, Met: m >= containerRPSGoal,
			Figure: fmt.Sprintf("%.2f× (%.1f vs %.1f req/s, one connection)", m, medianF(dk), medianF(pr))}
		if !v.Met {
			v.Limit = "each request crosses the engine's port forward (Podman: netavark's DNAT on the loopback) as well as the gateway." + busyNote(r)
		}
		out = append(out, v)
	}
	return out
}

// mdContainers renders scenario 7.
func mdContainers(b *strings.Builder, r *Results, c *ContainersResult) {
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	w("## 7. Containers (docker driver) beside the process driver\n\n")
	if c.Skipped != "" {
		w("Not run: %s.\n\n", c.Skipped)
		return
	}
	w("The iris example deployed by `plumbline serve --driver docker` — its `docker-context` built with `plumbline image build` (Debian packages instead of CRAN; %s, with the engine's cached layers) and run with its own `start_plumber.R` — and by the process driver on the same R server (`plumbline.r_runtime: plumber`, so the difference is the container; the lean runtime's gain is scenario 9's), in alternating order; each create uses `--no-wait` while the harness polls the scoring URL with `azureml-model-deployment`. Then requests/s through the gateway (HTTPS, key auth) with one keep-alive connection.\n\n", fmtDur(c.Build))
	w("| driver | create → first 200 (median) | repeats | Started → Ready (median) | req/s c=1 (median) | p50 | p99 |\n|---|---|---|---|---|---|---|\n")
	for _, v := range []string{cProcess, cDocker} {
		runs := c.Runs[v]
		w("| %s | %s | %s | %s | %.1f | %s | %s |\n", v, fmtDur(medianDur(c.FirstOK[v])), joinDur(c.FirstOK[v]), fmtDur(medianDur(c.StartToReady[v])),
			medianF(pick(runs, rps)), fmtDur(medianDur(pick(runs, p50))), fmtDur(medianDur(pick(runs, p99))))
	}
	w("\n")
}
