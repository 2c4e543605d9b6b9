package spec

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// seedFuzz adds this package's testdata and, when present, Azure's examples.
func seedFuzz(f *testing.F, add func([]byte)) {
	for _, root := range []string{"testdata", filepath.Join(sharedDir(), "testdata", "azureml-examples")} {
		_ = filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return nil
			}
			switch strings.ToLower(filepath.Ext(p)) {
			case ".yml", ".yaml", ".golden":
				if b, err := os.ReadFile(p); err == nil {
					add(b)
				}
			}
			return nil
		})
	}
	for _, s := range []string{
		"", "---\n---\n", "name: &a [*a]\n", "a: {{X}}\n", "? [a]\n: b\n", "<<: [*x]\n", "{\"name\": 1}",
		okDeployment + "request_settings: {request_timeout_ms: abc}\n",
		"name: e1x\ntraffic: {a: 1, A: 2}\nmirror_traffic: {b: 60}\n",
		"name: e\nimage: x\nconda_file: {dependencies: 1}\nplumbline: {runtime: generic}\n",
	} {
		add([]byte(s))
	}
}

// FuzzParse proves no input makes Parse panic, and that every error is
// Errors with one line per problem.
func FuzzParse(f *testing.F) {
	seedFuzz(f, func(b []byte) { f.Add(b, "") })
	f.Add([]byte(okDeployment), "instance_count=2")
	f.Add([]byte(okDeployment), "a.0.b=[1, {c: d}]")
	f.Fuzz(func(t *testing.T, data []byte, set string) {
		var sets []string
		if set != "" {
			sets = []string{set}
		}
		for _, expect := range []Kind{"", KindDeployment} {
			doc, err := Parse("f.yml", data, ParseOptions{Sets: sets, Expect: expect})
			if err != nil {
				var errs Errors
				if !errors.As(err, &errs) {
					t.Fatalf("error %T is not Errors: %v", err, err)
				}
				if got := strings.Count(err.Error(), "\n") + 1; got != len(errs) {
					t.Fatalf("%d problems printed on %d lines:\n%s", len(errs), got, err)
				}
			}
			if doc == nil {
				continue
			}
			for _, n := range append(doc.Notices, doc.Warnings...) {
				if strings.Contains(n.String(), "\n") {
					t.Fatalf("notice on several lines: %q", n.String())
				}
			}
			// Defaults and JSON never fail on a parsed document.
			var v any
			switch doc.Kind {
			case KindEndpoint:
				v = doc.Endpoint.Defaulted()
			case KindDeployment:
				v = doc.Deployment.Defaulted()
				_ = doc.Deployment.LocalPaths()
			case KindModel:
				v = doc.Model.Defaulted()
			case KindEnvironment:
				v = doc.Environment.Defaulted()
			}
			if _, err := json.Marshal(v); err != nil {
				t.Fatalf("json: %v", err)
			}
		}
	})
}

// FuzzRefs covers the small string parsers used by the CLI.
func FuzzRefs(f *testing.F) {
	for _, s := range []string{"azureml:m:1", "azureml:m@latest", "azureml://registries/r/models/m/versions/1",
		"azureml:/subscriptions/s/models/m/versions/1", "sha256:" + strings.Repeat("a", 64), "./m", "blue=90 green=10", "0.5Gi", "100m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if r, err := ParseModelRef(s); err == nil {
			if r.Raw != s {
				t.Fatalf("Raw %q != %q", r.Raw, s)
			}
			b, _ := json.Marshal(r)
			var back ModelRef
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("round trip of %q: %v", s, err)
			}
		}
		_, _ = ParseEnvironmentRef(s)
		if m, err := ParseTraffic(s); err == nil {
			if err := ValidateTraffic(m, nil); err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatal(err)
			}
		}
		_, _ = ParseCPU(s)
		_, _ = ParseMemory(s)
		_ = nearest(s, []string{"request_timeout_ms", "name"})
		_ = snakeCase(s)
	})
}
