package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/store/postgres/pgtest"
)

// replica is one `plumbline serve --role …` process sharing a PostgreSQL
// store and a data dir with the others.
type replica struct {
	name, role string
	cmd        *exec.Cmd
	log        *logBuffer
	exited     chan struct{}
	url        string // https://localhost:<port>, the API and the scoring base
}

var servingAt = regexp.MustCompile(`is serving at (https://\S+)`)

// startReplica runs a replica and waits until it listens. It is stopped
// with SIGTERM when the test ends; its log is printed if the test failed.
func startReplica(t *testing.T, dd, pg, role, name string) *replica {
	t.Helper()
	requireBinary(t)
	r := &replica{name: name, role: role, log: &logBuffer{}, exited: make(chan struct{})}
	r.cmd = exec.Command(binPath, "serve", "--role", role, "--store", pg, "--data-dir", dd,
		"--listen", "127.0.0.1:0", "--replica-id", name, "--on-exit", "stop")
	r.cmd.Env = cleanEnv()
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { r.cmd.Wait(); close(r.exited) }()
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			t.Logf("replica %s (%s, pid %d) output:\n%s", name, role, r.cmd.Process.Pid, r.log.Tail(24<<10))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := servingAt.FindStringSubmatch(r.log.String()); m != nil {
			r.url = m[1]
			return r
		}
		select {
		case <-r.exited:
			t.Fatalf("replica %s exited before it listened:\n%s", name, r.log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s did not listen within 30s:\n%s", name, r.log.String())
		}
	}
}

func (r *replica) stop() {
	select {
	case <-r.exited:
		return
	default:
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(45 * time.Second):
		r.cmd.Process.Kill()
		<-r.exited
	}
}

func (r *replica) kill9(t *testing.T) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %s: %v", r.name, err)
	}
	<-r.exited
}

func (r *replica) leads() bool {
	return strings.Contains(r.log.String(), "leading: this replica reconciles")
}

// replicaCLI runs a command against one control replica, from dir.
func replicaCLI(t *testing.T, dd string, r *replica, dir string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Dir = dir
	cmd.Env = cleanEnv("PLUMBLINE_SERVER="+r.url, "PLUMBLINE_TOKEN="+readAdminToken(t, dd),
		"PLUMBLINE_CA_CERT="+filepath.Join(dd, "tls", "ca.crt"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ctx.Err() == nil:
		res.code = ee.ExitCode()
	default:
		t.Fatalf("plumbline %s: %v\n%s", strings.Join(args, " "), err, res)
	}
	if res.code != 0 {
		t.Fatalf("against %s: want exit 0, got %d:\n%s", r.name, res.code, res)
	}
	return res
}

func readAdminToken(t *testing.T, dd string) string {
	t.Helper()
	s := &server{dataDir: dd}
	return s.adminToken(t)
}

// TestReplicas runs plumbline as a team would: one PostgreSQL, two control
// replicas and three gateways on one machine, the seed's R deployment once.
// It checks that API writes work on either control replica, that every
// gateway scores, that a traffic change reaches all three gateways within a
// second, that kill -9 of the leader hands the instances to the other
// control replica within 15 s (same R pid: no duplicate, no orphan), and
// that kill -9 of a gateway and its restart cost nothing to requests sent
// through the others.
func TestReplicas(t *testing.T) {
	dir := irisFolder(t)
	body := sampleRequest(t, dir)
	pg := pgtest.URL(t)
	dd := newDataDir(t)

	ctlA := startReplica(t, dd, pg, "control", "control-a") // first: it creates the CA and the admin token
	ctlB := startReplica(t, dd, pg, "control", "control-b")
	var gws []*replica
	for i := range 3 {
		gws = append(gws, startReplica(t, dd, pg, "gateway", fmt.Sprintf("gateway-%d", i+1)))
	}
	waitFor(t, 15*time.Second, "one control replica to lead", func() (bool, string) {
		return ctlA.leads() != ctlB.leads(), fmt.Sprintf("control-a leads: %v, control-b leads: %v", ctlA.leads(), ctlB.leads())
	})
	leader, standby := ctlA, ctlB
	if ctlB.leads() {
		leader, standby = ctlB, ctlA
	}

	// API writes on either control replica.
	replicaCLI(t, dd, standby, dir, "model", "create", "--name", "iris-crate", "--path", "models")
	replicaCLI(t, dd, leader, dir, "online-endpoint", "create", "-f", "endpoint.yml", "--auth-mode", "key")
	replicaCLI(t, dd, standby, dir, "online-deployment", "create", "-f", "deployment.yml", "--all-traffic")
	var keys keysView
	decodeJSON(t, replicaCLI(t, dd, standby, dir, "online-endpoint", "get-credentials", "--name", irisEndpoint, "-o", "json"), &keys)
	// One process per instance (on the lean R runtime its R session and
	// workers run under it).
	procs := instanceLeaders(dd)
	if len(procs) != 1 {
		t.Fatalf("after the deployment: R instance processes %v, want exactly 1", procs)
	}
	var rpid int
	for pid := range procs {
		rpid = pid
	}

	c := (&server{dataDir: dd}).httpClient(t)
	uri := func(g *replica) string { return g.url + "/endpoints/" + irisEndpoint + "/score" }
	t.Run("every gateway scores", func(t *testing.T) {
		// The deployment and its traffic were committed when the CLI
		// returned; each gateway follows within a second.
		for _, g := range gws {
			var rep reply
			deadline := time.Now().Add(time.Second)
			for {
				rep = score(t, c, uri(g), keys.PrimaryKey, "", body)
				if rep.status == http.StatusOK || time.Now().After(deadline) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if rep.status != http.StatusOK || rep.body != irisPrediction {
				t.Errorf("through %s: got %d %q a second after the deployment, want 200 %s", g.name, rep.status, rep.body, irisPrediction)
			}
		}
	})

	t.Run("a traffic change reaches every gateway within a second", func(t *testing.T) {
		for _, step := range []struct {
			traffic string
			want    int
		}{{"blue=0", http.StatusNotFound}, {"blue=100", http.StatusOK}} {
			replicaCLI(t, dd, standby, dir, "online-endpoint", "update", "--name", irisEndpoint, "--traffic", step.traffic)
			changed := time.Now()
			var wg sync.WaitGroup
			for _, g := range gws {
				wg.Go(func() {
					for {
						rep, err := tryScore(c, uri(g), keys.PrimaryKey, "", body)
						if err == nil && rep.status == step.want {
							t.Logf("%s: %s answered %d %s after the update returned", step.traffic, g.name, step.want, time.Since(changed).Round(time.Millisecond))
							return
						}
						if time.Since(changed) > time.Second {
							t.Errorf("%s: %s still answers %d (%v) a second after the update", step.traffic, g.name, rep.status, err)
							return
						}
						time.Sleep(10 * time.Millisecond)
					}
				})
			}
			wg.Wait()
		}
	})

	// Constant load through gateways 2 and 3 from here on.
	var sent, failed atomic.Int64
	var firstFailure atomic.Value
	loadCtx, stopLoad := context.WithCancel(context.Background())
	var load sync.WaitGroup
	for _, g := range gws[1:] {
		load.Go(func() {
			for loadCtx.Err() == nil {
				rep, err := tryScore(c, uri(g), keys.PrimaryKey, "", body)
				sent.Add(1)
				if err != nil || rep.status != http.StatusOK || rep.body != irisPrediction {
					failed.Add(1)
					firstFailure.CompareAndSwap(nil, fmt.Sprintf("through %s: %d %q %v", g.name, rep.status, rep.body, err))
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	defer stopLoad()

	t.Run("kill -9 of the leader: the other control replica takes over", func(t *testing.T) {
		killed := time.Now()
		leader.kill9(t)
		waitFor(t, 15*time.Second, standby.name+" to lead", func() (bool, string) { return standby.leads(), "not yet" })
		t.Logf("%s leads %s after kill -9 of %s", standby.name, time.Since(killed).Round(time.Millisecond), leader.name)
		waitFor(t, 10*time.Second, "the R instance re-adopted", func() (bool, string) {
			ev := replicaCLI(t, dd, standby, dir, "online-deployment", "events", "--name", "blue", "--endpoint-name", irisEndpoint).stdout
			return strings.Contains(ev, "Re-adopted instance blue-0"), ev
		})
		if now := instanceLeaders(dd); len(now) != 1 || now[rpid] == "" {
			t.Errorf("R instance processes after the takeover: %v, want only pid %d (no duplicate, no orphan)", now, rpid)
		}
		var d deploymentView
		decodeJSON(t, replicaCLI(t, dd, standby, dir, "online-deployment", "show", "--name", "blue", "--endpoint-name", irisEndpoint, "-o", "json"), &d)
		if d.ProvisioningState != "Succeeded" || d.ready() != 1 {
			t.Errorf("blue after the takeover: %s, want Succeeded with 1 ready instance", d)
		}
	})

	t.Run("kill -9 of a gateway, then its restart", func(t *testing.T) {
		gws[0].kill9(t)
		time.Sleep(time.Second)
		g := startReplica(t, dd, pg, "gateway", "gateway-1b")
		if rep := scoreRouted(t, c, uri(g), keys.PrimaryKey, "", body); rep.status != http.StatusOK || rep.body != irisPrediction {
			t.Errorf("through the restarted gateway: got %d %q", rep.status, rep.body)
		}
	})

	stopLoad()
	load.Wait()
	t.Logf("constant load through gateway-2 and gateway-3: %d requests, %d failed", sent.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests through the surviving gateways failed; first: %v", failed.Load(), sent.Load(), firstFailure.Load())
	}
	if sent.Load() < 50 {
		t.Errorf("only %d requests were sent under load, want a real load", sent.Load())
	}
	if now := instanceLeaders(dd); len(now) != 1 || now[rpid] == "" {
		t.Errorf("R instance processes at the end: %v, want the same pid %d throughout", now, rpid)
	}
}
