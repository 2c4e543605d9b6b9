package cli

import (
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNormalizeArgs(t *testing.T) {
	sep := func(ws ...string) string { return strings.Join(ws, argSep) }
	tests := []struct {
		name    string
		args    []string
		want    []string
		wantErr string
	}{
		{"az's abbreviation of --endpoint-name",
			[]string{"ml", "online-deployment", "create", "--name", "blue", "--endpoint", "e1", "-f", "d.yml", "--all-traffic"},
			[]string{"ml", "online-deployment", "create", "--name=blue", "--endpoint-name=e1", "--file=d.yml", "--all-traffic"}, ""},
		{"--deployment for --deployment-name",
			[]string{"online-endpoint", "invoke", "--name", "e1", "--deployment", "green", "--request-file", "r.json"},
			[]string{"online-endpoint", "invoke", "--name=e1", "--deployment-name=green", "--request-file=r.json"}, ""},
		{"--set takes every word up to the next flag",
			[]string{"online-deployment", "update", "-n", "blue", "--set", "instance_count=2", "description=a b", "--add", "tags_list", "k=v", "x=y", "-e", "e1"},
			[]string{"online-deployment", "update", "--name=blue", "--set=" + sep("instance_count=2", "description=a b"), "--add=" + sep("tags_list", "k=v", "x=y"), "--endpoint-name=e1"}, ""},
		{"--tags a=b c=d",
			[]string{"model", "create", "--tags", "a=b", "c=d", "--name", "m"},
			[]string{"model", "create", "--tags=" + sep("a=b", "c=d"), "--name=m"}, ""},
		{"a value that looks like a flag stays a value of a one-word flag",
			[]string{"online-endpoint", "invoke", "-n", "e1", "-r", "-"},
			[]string{"online-endpoint", "invoke", "--name=e1", "--request-file=-"}, ""},
		{"query values pass whole",
			[]string{"online-endpoint", "list", "--query", "[?name=='a'].name", "-o", "tsv"},
			[]string{"online-endpoint", "list", "--query=[?name=='a'].name", "--output=tsv"}, ""},
		{"ambiguous prefix", []string{"online-endpoint", "update", "--n", "x"}, nil, "--n is ambiguous: it could be --name, --no-wait"},
		{"unknown flags are left for cobra", []string{"online-endpoint", "show", "--bogus"}, []string{"online-endpoint", "show", "--bogus"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &globals{stdout: io.Discard, stderr: io.Discard, errw: io.Discard}
			got, err := normalizeArgs(newRoot(g), tt.args)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("got error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
