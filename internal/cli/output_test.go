package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// The answers az gives for the same data and query, as knack's formatters
// (format_tsv, format_table with tabulate) print them.
func TestPrinterQueryFormats(t *testing.T) {
	deployments := []any{
		map[string]any{"name": "blue", "provisioning_state": "Succeeded", "instance_count": 2.0, "traffic": map[string]any{"a": 1.0}, "ready": true, "instances": []any{1.0, 2.0}, "reason": nil},
		map[string]any{"name": "green", "provisioning_state": "Failed", "instance_count": 1.0, "traffic": map[string]any{}, "ready": false, "instances": []any{}, "reason": "probe"},
	}
	tests := []struct {
		name, format, query string
		in                  any
		want                string
	}{
		{"tsv filter projection", "tsv", "[?provisioning_state=='Succeeded'].name", deployments, "blue\n"},
		{"tsv index", "tsv", "[0].name", deployments, "blue\n"},
		{"tsv multiselect keeps the query's order", "tsv", "[].{State:provisioning_state,Name:name}", deployments, "Succeeded\tblue\nFailed\tgreen\n"},
		{"tsv whole objects: sorted keys, list length, empty object cell, Python scalars", "tsv", "[?name=='blue']", deployments, "2\t2\tblue\tSucceeded\tTrue\tNone\t\n"},
		{"tsv top-level boolean is lower case", "tsv", "[0].ready", deployments, "true\n"},
		{"tsv number", "tsv", "[1].instance_count", deployments, "1\n"},
		{"tsv list of lists", "tsv", "[].[name, instance_count]", deployments, "blue\t2\ngreen\t1\n"},
		{"table multiselect", "table", "{Name:name,State:provisioning_state}", deployments[0],
			"Name    State\n------  ---------\nblue    Succeeded\n"},
		{"table scalar is Result", "table", "[0].name", deployments, "Result\n--------\nblue\n"},
		{"table list of scalars", "table", "[].name", deployments, "Result\n--------\nblue\ngreen\n"},
		{"table objects: scalar fields, capitalised, None left out", "table", "[]", deployments,
			"Instance_count    Name    Provisioning_state    Ready    Reason\n" +
				"----------------  ------  --------------------  -------  --------\n" +
				"2                 blue    Succeeded             True\n" +
				"1                 green   Failed                False    probe\n"},
		{"table of lists", "table", "[].[name, instance_count]", deployments, "Column1    Column2\n---------  ---------\nblue       2\ngreen      1\n"},
		{"null result prints nothing", "json", "nosuch", deployments[0], ""},
		{"json sorted, no HTML escaping", "json", "{z:name,a:'<&>'}", deployments[0], "{\n  \"a\": \"<&>\",\n  \"z\": \"blue\"\n}\n"},
		{"yaml", "yaml", "[0].traffic", deployments, "a: 1\n"},
		{"none", "none", "", deployments, ""},
		{"old dotted path still works", "tsv", "traffic.a", deployments[0], "1\n"},
		{"tsv without a query is az's too", "tsv", "", map[string]any{"primaryKey": "k1", "secondaryKey": "k2"}, "k1\tk2\n"},
		{"numbers as Python prints them", "tsv", "", []any{0.5, 1e-05, 1e20, 3.0}, "0.5\n1e-05\n1e+20\n3\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			g := &globals{stdout: &out, output: tt.format, query: tt.query}
			if err := g.print(tt.in, nil); err != nil {
				t.Fatal(err)
			}
			if got := out.String(); got != tt.want {
				t.Errorf("got:\n%q\nwant:\n%q", got, tt.want)
			}
		})
	}
}

func TestPrinterErrors(t *testing.T) {
	tests := []struct {
		name, format, query string
		usage               bool
		want                string
	}{
		{"syntax error points at the place", "json", "[?name=='blue'", true, "not a valid JMESPath expression"},
		{"dotted index suggests brackets", "json", "instances.0.name", true, "instances[0].name"},
		{"unknown format", "xml", "", true, "want json, jsonc, yaml, yamlc, table, tsv or none"},
		{"table of nothing scalar", "table", "{a:traffic}", false, "table output unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			g := &globals{stdout: &out, output: tt.format, query: tt.query}
			err := g.print(map[string]any{"traffic": map[string]any{"blue": 100.0}}, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
			var ue *usageError
			if errors.As(err, &ue) != tt.usage {
				t.Errorf("usage error: got %v, want %v", !tt.usage, tt.usage)
			}
		})
	}
}
