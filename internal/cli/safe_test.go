package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var historyID = regexp.MustCompile(`("id": )\d+(,\s+"rollout_id")`)

// TestSafeRolloutVerbs runs the rollout, compare, capture and replay verbs
// against the real test server (the test binary as scoring server) and
// keeps their output in testdata/output.
func TestSafeRolloutVerbs(t *testing.T) {
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin = instanceRunnable(t, bin)
	fixture := filepath.Join("testdata", "fixture")
	s := &scrubber{}
	s.add(testDataDir(t), "DATADIR")
	s.add(bin, "TESTBIN")
	command := `environment.plumbline.command=["` + bin + `"]`
	const ep = "cli-rollout"
	mustCLI(t, "model", "create", "--name", "clitest-model", "--version", "rollout", "--path", filepath.Join(fixture, "model"))
	mustCLI(t, "online-endpoint", "create", "-f", filepath.Join(fixture, "endpoint.yml"), "--name", ep)
	for _, name := range []string{"blue", "green"} {
		args := []string{"online-deployment", "create", "-f", filepath.Join(fixture, "deployment.yml"), "--name", name, "--endpoint-name", ep,
			"--set", command, "model=azureml:clitest-model:rollout"}
		if name == "blue" {
			args = append(args, "--all-traffic")
		} else {
			args = append(args, "--set", "plumbline.capture.sampling_rate=1", "plumbline.capture.redact=[\"$.customer\"]")
		}
		mustCLI(t, args...)
	}
	invoke := func() {
		t.Helper()
		mustCLI(t, "online-endpoint", "invoke", "--name", ep, "--request-file", filepath.Join(fixture, "sample_request_customer.json"))
	}

	// A manual traffic change is refused while the rollout runs.
	start := []string{"online-deployment", "rollout", "--name", "green", "--endpoint-name", ep, "--steps", "50,100",
		"--min-requests", "2", "--bake-time", "0", "--max-latency-ratio", "0"}
	for _, f := range []string{"json", "table"} {
		if f == "table" {
			mustCLI(t, "online-deployment", "rollout", "abort", "--name", "green", "--endpoint-name", ep)
		}
		r := mustCLI(t, append(start, "-o", f)...)
		// History ids count every endpoint's changes on the shared server.
		out := historyID.ReplaceAllString(r.stdout, "${1}ID$2")
		golden(t, "output/rollout_start."+f, s.scrub(out, f == "table"))
	}
	if r := cli(t, "online-endpoint", "update", "--name", ep, "--traffic", "blue=100"); r.code != 1 || !strings.Contains(r.stderr, "owns endpoint cli-rollout's traffic") {
		t.Errorf("a traffic change during the rollout: exit %d, %s", r.code, r.stderr)
	}
	if r := cli(t, "online-deployment", "rollout", "--name", "green", "--endpoint-name", ep); r.code != 1 || !strings.Contains(r.stderr, "already has a rollout of green in progress") {
		t.Errorf("a second rollout: exit %d, %s", r.code, r.stderr)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		invoke()
		r := mustCLI(t, "online-deployment", "rollout", "status", "--name", "green", "--endpoint-name", ep, "--query", "state", "-o", "tsv")
		if strings.TrimSpace(r.stdout) == "Succeeded" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rollout did not succeed within a minute: %s", mustCLI(t, "online-deployment", "rollout", "status", "--name", "green", "--endpoint-name", ep, "-o", "table").stdout)
		}
	}
	r := mustCLI(t, "online-deployment", "rollout", "status", "--name", "green", "--endpoint-name", ep, "-o", "json",
		"--query", "{state:state,step:step,percent:percent,history:history[].cause}")
	golden(t, "output/rollout_status", s.scrub(r.stdout, false))
	r = mustCLI(t, "online-deployment", "rollout", "history", "--endpoint-name", ep, "-o", "table")
	golden(t, "output/rollout_history.table", s.scrub(r.stdout, true))
	r = mustCLI(t, "online-deployment", "rollout", "list", "--endpoint-name", ep, "-o", "tsv", "--query", "[].[id,name,state]")
	golden(t, "output/rollout_list.tsv", r.stdout)
	if r := mustCLI(t, "online-deployment", "rollout", "status", "--name", "green", "--endpoint-name", ep, "-o", "table"); !strings.Contains(r.stdout, "State         Succeeded") {
		t.Errorf("status as a report:\n%s", r.stdout)
	}

	// Mirror to blue and compare: the same model agrees everywhere.
	mustCLI(t, "online-endpoint", "update", "--name", ep, "--mirror-traffic", "blue=50")
	deadline = time.Now().Add(time.Minute)
	for {
		invoke()
		var c struct {
			Comparisons []struct{ Pairs int } `json:"comparisons"`
		}
		_ = json.Unmarshal([]byte(mustCLI(t, "online-endpoint", "compare", "--name", ep, "-o", "json").stdout), &c)
		if len(c.Comparisons) == 1 && c.Comparisons[0].Pairs >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no comparison within a minute: %+v", c)
		}
	}
	r = mustCLI(t, "online-endpoint", "compare", "--name", ep, "-o", "json",
		"--query", "{mirror:mirror_traffic,comparisons:comparisons[].{kind:kind,live:live,shadow:shadow,agreement:agreement,incomparable:incomparable,shadow_errors:shadow_errors}}")
	golden(t, "output/endpoint_compare", s.scrub(r.stdout, false))
	if r := mustCLI(t, "online-endpoint", "compare", "--name", ep, "-o", "table"); !strings.Contains(r.stdout, "Mirror green → blue, compared at the whole answer") ||
		!strings.Contains(r.stdout, "Agreement") || !strings.Contains(r.stdout, "100 %") {
		t.Errorf("compare as a report:\n%s", r.stdout)
	}

	// Capture (green keeps every request, its customer field removed) and
	// replay to blue.
	r = mustCLI(t, "online-deployment", "capture", "--name", "green", "--endpoint-name", ep, "--limit", "1", "-o", "json",
		"--query", "[0].{deployment:deployment,model:model,status:status,request:request,redacted:redacted}")
	golden(t, "output/deployment_capture", s.scrub(r.stdout, false))
	r = mustCLI(t, "online-deployment", "capture", "replay", "--name", "green", "--endpoint-name", ep, "--to", "blue", "--limit", "3", "-o", "json")
	golden(t, "output/capture_replay", s.scrub(r.stdout, false))
	waitCLI(t, "the replay's figures", func() bool {
		r = mustCLI(t, "online-endpoint", "compare", "--name", ep, "-o", "tsv", "--query", "comparisons[?kind=='replay'].[live,shadow,pairs,agreement]")
		return r.stdout != ""
	})
	golden(t, "output/endpoint_compare_replay.tsv", r.stdout)
	if out := mustCLI(t, "online-deployment", "capture", "--name", "green", "--endpoint-name", ep, "-o", "json").stdout; strings.Contains(out, "c-17") || !strings.Contains(out, "request_id") {
		t.Errorf("the captured records hold the redacted field, or nothing:\n%s", out)
	}
}

// waitCLI polls cond (which runs CLI commands) until it holds or a minute
// passes.
func waitCLI(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
