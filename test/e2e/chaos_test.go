package e2e

import (
	"bytes"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/tmpfs"
)

// TestChaos is a bounded chaos run for CI: the seed's R deployment under
// scoring load, instances killed with SIGKILL, the server killed with
// SIGKILL right after a deployment create, a traffic change and a delete
// were acknowledged, and restarted. After every restart it checks that no
// acknowledged write was lost, that no traffic entry names a deployment
// that does not exist, and that no instance process runs that the server
// does not account for (no orphan, no duplicate); at the end, that a
// graceful stop leaves no process behind.
func TestChaos(t *testing.T) {
	dir := irisFolder(t)
	dd := newDataDir(t)
	s := startServer(t, dd)
	s.mustIn(t, dir, "model", "create", "--name", "iris-crate", "--path", "models")
	s.mustIn(t, dir, "online-endpoint", "create", "-f", "endpoint.yml", "--set", "auth_mode=key")
	s.mustIn(t, dir, "online-deployment", "create", "-f", "deployment.yml", "--all-traffic", "--skip-script-validation")

	// What was acknowledged: the CLI said it was done (exit 0).
	acked := struct {
		traffic     map[string]int
		deployments map[string]bool
	}{map[string]int{"blue": 100}, map[string]bool{"blue": true}}

	// Scoring load, for the whole run, through whichever server is up.
	body := sampleRequest(t, dir)
	var cur atomic.Pointer[server]
	cur.Store(s)
	stopLoad := make(chan struct{})
	var loadWG sync.WaitGroup
	var sent, ok200 atomic.Int64
	statuses := sync.Map{}
	key := s.keys(t, irisEndpoint).PrimaryKey
	client := s.httpClient(t) // the CA stays across restarts; the port does not
	for range 2 {
		loadWG.Go(func() {
			for {
				select {
				case <-stopLoad:
					return
				default:
				}
				uri := "https://localhost:" + portOf(cur.Load()) + "/endpoints/" + irisEndpoint + "/score"
				rep, err := tryScore(client, uri, key, "", body)
				sent.Add(1)
				k := "transport error"
				if err == nil {
					k = fmt.Sprint(rep.status)
					if rep.status == http.StatusOK {
						ok200.Add(1)
					}
				}
				v, _ := statuses.LoadOrStore(k, new(atomic.Int64))
				v.(*atomic.Int64).Add(1)
				if err != nil || rep.status != http.StatusOK {
					time.Sleep(50 * time.Millisecond) // down or restarting: do not spin
				}
			}
		})
	}
	defer func() {
		close(stopLoad)
		loadWG.Wait()
		var parts []string
		statuses.Range(func(k, v any) bool {
			parts = append(parts, fmt.Sprintf("%v×%d", k, v.(*atomic.Int64).Load()))
			return true
		})
		sort.Strings(parts)
		t.Logf("scoring load during the chaos: %d requests, %d answered 200 [%s]", sent.Load(), ok200.Load(), strings.Join(parts, " "))
		if ok200.Load() == 0 {
			t.Error("no request succeeded during the whole run")
		}
	}()

	// check verifies the acknowledged state and the processes, once the
	// deployments in want are ready.
	check := func(t *testing.T, when string) {
		t.Helper()
		srv := cur.Load()
		for name := range acked.deployments {
			srv.waitDeploymentReady(t, irisEndpoint, name, 1, 90*time.Second)
		}
		ep := srv.endpoint(t, irisEndpoint)
		got := map[string]int{}
		for k, v := range ep.Traffic {
			if v > 0 {
				got[k] = v
			}
		}
		if !maps.Equal(got, acked.traffic) {
			t.Errorf("%s: traffic %v, want the acknowledged %v", when, got, acked.traffic)
		}
		var deps []deploymentView
		srv.mustJSON(t, &deps, "online-deployment", "list", "--endpoint-name", irisEndpoint)
		have := map[string]bool{}
		for _, d := range deps {
			have[d.Name] = true
		}
		for name := range acked.deployments {
			if !have[name] {
				t.Errorf("%s: acknowledged deployment %s is gone", when, name)
			}
		}
		for name, pct := range ep.Traffic {
			if pct > 0 && !have[name] {
				t.Errorf("%s: traffic %d%% to %s, which does not exist (deployments: %v)", when, pct, name, slices.Sorted(maps.Keys(have)))
			}
		}
		// Every instance process of this data dir is one the server runs
		// now: as many as the deployments' instances, each in a record
		// (on the lean R runtime, the R session and workers run under it).
		waitFor(t, 30*time.Second, when+": instance processes = recorded instances", func() (bool, string) {
			procs := instanceLeaders(dd)
			recs := records(t, dd)
			pids := map[int]bool{}
			for _, r := range recs {
				pids[r.PID] = true
			}
			var strays []int
			for pid := range procs {
				if !pids[pid] {
					strays = append(strays, pid)
				}
			}
			return len(strays) == 0 && len(procs) == len(acked.deployments), fmt.Sprintf("%d instance processes for %d deployments; not in a record: %v", len(procs), len(acked.deployments), strays)
		})
	}
	top := t // servers live for the whole test, not one step
	restart := func(t *testing.T) {
		t.Helper()
		cur.Load().kill9(t)
		cur.Store(startServer(top, dd))
	}
	killInstance := func(t *testing.T, deployment string) {
		t.Helper()
		rec, ok := findRecord(t, dd, irisEndpoint, deployment, deployment+"-0")
		if ok && alive(rec.PID) {
			syscall.Kill(rec.PID, syscall.SIGKILL)
		}
	}

	t.Run("instance killed under load", func(t *testing.T) {
		killInstance(t, "blue")
		check(t, "after kill -9 of blue-0")
	})

	t.Run("server killed right after a create was acknowledged", func(t *testing.T) {
		srv := cur.Load()
		srv.mustIn(t, dir, "online-deployment", "create", "-f", "green-deployment.yml", "--no-wait", "--skip-script-validation")
		acked.deployments["green"] = true
		time.Sleep(300 * time.Millisecond) // mid-start: R is loading
		killInstance(t, "green")
		restart(t)
		check(t, "after kill -9 of the server during green's start")
	})

	t.Run("server killed right after a traffic change", func(t *testing.T) {
		cur.Load().must(t, "online-endpoint", "update", "--name", irisEndpoint, "--traffic", "blue=80 green=20")
		acked.traffic = map[string]int{"blue": 80, "green": 20}
		restart(t)
		check(t, "after kill -9 of the server after a traffic change")
	})

	t.Run("server killed during a delete", func(t *testing.T) {
		srv := cur.Load()
		srv.must(t, "online-endpoint", "update", "--name", irisEndpoint, "--traffic", "blue=100 green=0")
		acked.traffic = map[string]int{"blue": 100}
		srv.must(t, "online-deployment", "delete", "--name", "green", "--endpoint-name", irisEndpoint, "--yes", "--no-wait")
		delete(acked.deployments, "green")
		restart(t)
		waitFor(t, 60*time.Second, "green deleted after the restart", func() (bool, string) {
			r := cur.Load().cli(t, "online-deployment", "show", "--name", "green", "--endpoint-name", irisEndpoint)
			return r.code != 0, r.stdout
		})
		check(t, "after kill -9 of the server during green's deletion")
	})

	t.Run("graceful stop leaves nothing", func(t *testing.T) {
		cur.Load().stop(t) // fails the test if an instance outlives it
		if left := instanceProcs(dd); len(left) > 0 {
			t.Errorf("instance processes after SIGTERM: %v", left)
		}
		cur.Store(startServer(top, dd))
		check(t, "after a graceful restart")
	})
}

func portOf(s *server) string {
	_, port, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(s.state.URL, "https://"), "http://"), ":")
	return port
}

// TestDiskFullEndToEnd: a server whose data dir fills up answers uploads
// and writes with what happened (507, "disk is full"), stores nothing half,
// and works again once there is room.
func TestDiskFullEndToEnd(t *testing.T) {
	requireBinary(t)
	mnt := tmpfs.Mount(t, 24<<20)
	dd := filepath.Join(mnt, "data")
	// A server running as root runs instances as an unprivileged user, who
	// must enter the data dir: open the way (the mount and its parent).
	os.Chmod(mnt, 0o711)
	os.Chmod(filepath.Dir(mnt), 0o711)
	s := startServer(t, dd)
	model := t.TempDir()
	writeFile(t, filepath.Join(model, "weights.bin"), strings.Repeat("w", 4<<20))
	// Fill the disk, leaving a little for the database's next pages.
	filler := filepath.Join(filepath.Dir(dd), "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte{1}, 256<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	f.Close()
	r := s.cli(t, "model", "create", "--name", "big", "--path", model)
	if r.code != 1 || !strings.Contains(r.stderr, "disk is full") || !strings.Contains(r.stderr, "free space") {
		t.Errorf("model create on a full disk: got exit %d, want 1 saying the disk is full and to free space:\n%s", r.code, r)
	}
	r = s.cli(t, "online-endpoint", "create", "--name", "full-ep")
	if r.code == 0 {
		t.Log("endpoint create fit in the pages the database had left")
	} else if !strings.Contains(r.stderr, "disk is full") {
		t.Errorf("endpoint create on a full disk: want a message saying the disk is full:\n%s", r)
	}
	var fsck struct {
		Problems []struct{ Kind, Path string } `json:"problems"`
	}
	s.mustJSON(t, &fsck, "fsck", "--min-age", "0s")
	for _, p := range fsck.Problems {
		t.Errorf("after the refused upload, fsck found %s %s", p.Kind, p.Path)
	}
	os.Remove(filler)
	s.must(t, "model", "create", "--name", "big", "--path", model)
	s.must(t, "online-endpoint", "create", "--name", "after-ep")
	s.must(t, "fsck")
}
