package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ with the output of this run")

// result is one CLI run.
type result struct {
	stdout, stderr string
	code           int
}

// cli runs the command line in-process against the test server, as a user
// runs plumbline (with the CLI config pointed at a file that is not there,
// so a developer's own profiles do not leak in).
func cli(t *testing.T, args ...string) result {
	t.Helper()
	dd := testDataDir(t)
	t.Setenv(envConfig, filepath.Join(t.TempDir(), "config.yaml"))
	for _, e := range []string{envServer, envToken, envCACert, "PLUMBLINE_DATA_DIR"} {
		t.Setenv(e, "")
	}
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := Main(ctx, append(args, "--data-dir", dd), strings.NewReader(""), &out, &errb)
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// mustCLI is cli that fails the test unless the command exits 0.
func mustCLI(t *testing.T, args ...string) result {
	t.Helper()
	r := cli(t, args...)
	if r.code != 0 {
		t.Fatalf("plumbline %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// scrubber replaces what differs from run to run (times, ports, keys,
// paths, durations) with fixed words, so output can be compared with
// golden files.
type scrubber struct {
	exact *strings.Replacer
	pairs []string
}

var (
	reTime     = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?`)
	rePort     = regexp.MustCompile(`(127\.0\.0\.1|localhost):\d+`)
	reDuration = regexp.MustCompile(`\b(in|after) \d+(\.\d+)?(µs|ms|s)\b`)
	reSpaces   = regexp.MustCompile(`  +`)
	// A deployment's recent latencies and the age of its figures' window.
	reFigure = regexp.MustCompile(`"(p50_ms|p99_ms|window_seconds)": \d+(\.\d+)?`)
	reDashes = regexp.MustCompile(`---+`)
)

func (s *scrubber) add(old, new string) {
	if old != "" {
		s.pairs = append(s.pairs, old, new)
		s.exact = strings.NewReplacer(s.pairs...)
	}
}

func (s *scrubber) scrub(out string, table bool) string {
	if s.exact != nil {
		out = s.exact.Replace(out)
	}
	out = reTime.ReplaceAllString(out, "TIME")
	out = rePort.ReplaceAllString(out, "$1:PORT")
	out = reDuration.ReplaceAllString(out, "$1 DURATION")
	out = reFigure.ReplaceAllString(out, `"$1": FIGURE`)
	if table {
		// Column widths follow the values scrubbed above: compare the
		// cells, not the padding.
		lines := strings.Split(out, "\n")
		for i, l := range lines {
			lines[i] = strings.TrimRight(reDashes.ReplaceAllString(reSpaces.ReplaceAllString(l, "  "), "---"), " ")
		}
		out = strings.Join(lines, "\n")
	}
	return out
}

// golden compares got with testdata/<name>.golden (or writes it with
// -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/cli -update to write it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got); if the change is intended, run go test ./internal/cli -update:\n%s", path, diff)
	}
}

// TestHelpGolden keeps the help of every command in testdata/help.
func TestHelpGolden(t *testing.T) {
	g := &globals{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	var walk func(c *cobra.Command)
	var paths [][]string
	walk = func(c *cobra.Command) {
		path := strings.Fields(c.CommandPath())[1:]
		paths = append(paths, path)
		if c.Name() == "ml" {
			return // the same commands as at the top
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRoot(g))
	for _, p := range paths {
		name := strings.Join(append([]string{"plumbline"}, p...), "_")
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := Main(context.Background(), append(p, "--help"), nil, &out, &errb); code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			golden(t, "help/"+name, out.String())
		})
	}
}

var formats = []string{"json", "yaml", "table", "tsv"}

// TestVerbsGolden runs every verb against a real server (plumbline serve
// with the process driver, deploying the test binary as a scoring server)
// and keeps its json, yaml, table and tsv output in testdata/output.
func TestVerbsGolden(t *testing.T) {
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

	// each runs one verb in every format: args(format) are its arguments.
	each := func(name string, args func(f string) []string) {
		t.Helper()
		for _, f := range formats {
			r := mustCLI(t, append(args(f), "-o", f)...)
			golden(t, "output/"+name+"."+f, s.scrub(r.stdout, f == "table"))
		}
	}
	// keys learns an endpoint's keys so they are scrubbed.
	keys := func(ep string) {
		t.Helper()
		var k struct{ PrimaryKey, SecondaryKey string }
		if err := json.Unmarshal([]byte(mustCLI(t, "online-endpoint", "get-credentials", "-n", ep, "-o", "json").stdout), &k); err != nil {
			t.Fatal(err)
		}
		s.add(k.PrimaryKey, "PRIMARY-KEY")
		s.add(k.SecondaryKey, "SECONDARY-KEY")
	}

	each("model_create", func(f string) []string {
		return []string{"model", "create", "--name", "clitest-model", "--version", f, "--path", filepath.Join(fixture, "model"), "--tags", "team=ml", "stage=test", "--description", "a model"}
	})
	each("model_list", func(string) []string { return []string{"model", "list", "--name", "clitest-model"} })
	each("model_show", func(string) []string {
		return []string{"model", "show", "--name", "clitest-model", "--version", "json"}
	})
	each("model_update", func(f string) []string {
		return []string{"ml", "model", "update", "--name", "clitest-model", "--version", f, "--set", "description=updated", "stage=Production", "tags.team=ops", "--remove", "tags.stage"}
	})
	t.Run("model update refuses other fields", func(t *testing.T) {
		r := cli(t, "model", "update", "--name", "clitest-model", "--version", "json", "--set", "version=9")
		if r.code != 2 || !strings.Contains(r.stderr, "changes only description, tags and stage") {
			t.Errorf("exit %d, %s; want 2 and why", r.code, r.stderr)
		}
	})

	each("endpoint_create", func(f string) []string {
		return []string{"online-endpoint", "create", "-f", filepath.Join(fixture, "endpoint.yml"), "--name", "cli-" + f}
	})
	for _, f := range formats {
		keys("cli-" + f)
	}
	each("endpoint_show", func(string) []string { return []string{"online-endpoint", "show", "--name", "cli-json"} })
	each("endpoint_list", func(string) []string { return []string{"online-endpoint", "list"} })
	each("endpoint_update", func(f string) []string {
		return []string{"online-endpoint", "update", "--name", "cli-" + f, "--set", "description=updated", "tags.owner=cli", "--add", "tags_list", "x", "--remove", "tags_list"}
	})
	each("endpoint_get_credentials", func(string) []string { return []string{"online-endpoint", "get-credentials", "--name", "cli-json"} })

	each("deployment_create", func(f string) []string {
		return []string{"online-deployment", "create", "-f", filepath.Join(fixture, "deployment.yml"), "--endpoint", "cli-" + f, "--set", command, "--all-traffic"}
	})
	each("deployment_show", func(string) []string {
		return []string{"online-deployment", "show", "--name", "blue", "--endpoint-name", "cli-json"}
	})
	each("deployment_list", func(string) []string { return []string{"online-deployment", "list", "--endpoint-name", "cli-json"} })

	t.Run("invoke", func(t *testing.T) {
		r := mustCLI(t, "ml", "online-endpoint", "invoke", "--name", "cli-json", "--request-file", filepath.Join(fixture, "sample_request.json"))
		golden(t, "output/endpoint_invoke", s.scrub(r.stdout, false))
		r = mustCLI(t, "online-endpoint", "invoke", "--name", "cli-json", "--deployment", "blue", "--request-file", filepath.Join(fixture, "sample_request.json"))
		golden(t, "output/endpoint_invoke_deployment", s.scrub(r.stdout, false))
	})
	t.Run("get-logs", func(t *testing.T) {
		r := mustCLI(t, "online-deployment", "get-logs", "-n", "blue", "-e", "cli-json")
		golden(t, "output/deployment_get_logs", s.scrub(r.stdout, false))
		r = mustCLI(t, "online-deployment", "get-logs", "-n", "blue", "-e", "cli-json", "--container", "storage-initializer")
		golden(t, "output/deployment_get_logs_storage_initializer", s.scrub(r.stdout, false))
	})
	each("deployment_events", func(string) []string {
		return []string{"online-deployment", "events", "--name", "blue", "--endpoint-name", "cli-json",
			"--query", "[?reason=='ModelDownload' || reason=='CodeDownload' || reason=='Succeeded'].{Reason:reason,Instance:instance,Type:type}"}
	})
	each("deployment_update", func(f string) []string {
		return []string{"online-deployment", "update", "--name", "blue", "--endpoint", "cli-" + f, "--set", "instance_count=2", "tags.env=test"}
	})
	t.Run("get-logs all instances", func(t *testing.T) {
		r := mustCLI(t, "online-deployment", "get-logs", "-n", "blue", "-e", "cli-json", "--container", "storage-initializer", "--instance", "all")
		golden(t, "output/deployment_get_logs_storage_initializer_all", s.scrub(r.stdout, false))
	})

	// The examples: az's JMESPath with tsv and table.
	t.Run("queries", func(t *testing.T) {
		for _, q := range []struct{ name, query, format string }{
			{"succeeded_names", "[?provisioning_state=='Succeeded'].name", "tsv"},
			{"first_name", "[0].name", "tsv"},
			{"name_state", "[].{Name:name,State:provisioning_state}", "table"},
			{"filter_blue", "[?name=='blue'].{name:name,instance_count:instance_count,ready:length(instances[?ready])}", "json"},
		} {
			r := mustCLI(t, "online-deployment", "list", "--endpoint-name", "cli-json", "--query", q.query, "-o", q.format)
			golden(t, "output/query_"+q.name, s.scrub(r.stdout, false))
		}
	})
	each("info", func(string) []string { return []string{"info"} })

	t.Run("regenerate-keys", func(t *testing.T) {
		old := mustCLI(t, "online-endpoint", "get-credentials", "--name", "cli-tsv", "--query", "secondaryKey", "-o", "tsv").stdout
		r := mustCLI(t, "online-endpoint", "regenerate-keys", "--name", "cli-tsv", "--key-type", "secondary")
		if r.stdout != "" {
			t.Errorf("regenerate-keys printed %q on stdout, want nothing", r.stdout)
		}
		if now := mustCLI(t, "online-endpoint", "get-credentials", "--name", "cli-tsv", "--query", "secondaryKey", "-o", "tsv").stdout; now == old {
			t.Errorf("the secondary key did not change")
		}
	})
	t.Run("delete", func(t *testing.T) {
		r := cli(t, "online-deployment", "delete", "--name", "blue", "--endpoint", "cli-yaml", "--yes")
		if r.code != 1 || !strings.Contains(r.stderr, "traffic") {
			t.Errorf("deleting a deployment with live traffic: exit %d, %s; want 1 and a word about its traffic", r.code, r.stderr)
		}
		mustCLI(t, "online-endpoint", "update", "--name", "cli-yaml", "--traffic", "blue=0")
		mustCLI(t, "online-deployment", "delete", "--name", "blue", "--endpoint", "cli-yaml", "--yes")
		mustCLI(t, "online-endpoint", "delete", "--name", "cli-yaml", "--yes")
		if r := cli(t, "online-endpoint", "show", "--name", "cli-yaml"); r.code != 1 {
			t.Errorf("show after delete: exit %d, want 1", r.code)
		}
	})
}

// instanceRunnable returns bin, or, when the server runs as root (its
// instances then run as the unprivileged plumbline-instance user, who
// cannot enter go test's private build folder), a copy in a folder that
// user can enter.
func instanceRunnable(t *testing.T, bin string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		return bin
	}
	dir, err := os.MkdirTemp("", "plumbline-cli-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(dir, filepath.Base(bin))
	if err := os.WriteFile(cp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return cp
}
