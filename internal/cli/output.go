package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"go.yaml.in/yaml/v3"
	"golang.org/x/term"
)

// Output formats for -o.
const (
	formatJSON  = "json"
	formatYAML  = "yaml"
	formatTable = "table"
	formatTSV   = "tsv"
)

// resolveFormat picks the output format: the flag if given, else table on a
// terminal and JSON otherwise (so scripts get JSON).
func resolveFormat(flag string, w io.Writer) (string, error) {
	switch strings.ToLower(flag) {
	case "":
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			return formatTable, nil
		}
		return formatJSON, nil
	case "json", "jsonc":
		return formatJSON, nil
	case "yaml", "yml":
		return formatYAML, nil
	case "table":
		return formatTable, nil
	case "tsv":
		return formatTSV, nil
	}
	return "", usageErrorf("--output %q: want json, yaml, table or tsv", flag)
}

// column is one table column: a header and how to read a cell from a row
// decoded as a generic JSON object.
type column struct {
	header string
	cell   func(row map[string]any) string
}

// field is a column showing one top-level field.
func field(header, name string) column {
	return column{header: header, cell: func(row map[string]any) string { return cellString(row[name]) }}
}

func cellString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return fmt.Sprint(x)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, k+"="+cellString(x[k]))
		}
		return strings.Join(parts, " ")
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			parts = append(parts, cellString(e))
		}
		return strings.Join(parts, ",")
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// printer writes command results in the chosen format.
type printer struct {
	w      io.Writer
	format string
	// query is a dotted path (--query primaryKey, --query traffic.blue)
	// selecting part of the result, as a small subset of az's JMESPath.
	query string
}

// print writes v (a value or a slice of values) as JSON, YAML, TSV or a
// table with cols. Tables of a single value print one row.
func (p *printer) print(v any, cols []column) error {
	if p.query != "" {
		generic, err := toGeneric(v)
		if err != nil {
			return err
		}
		if v, err = selectPath(generic, p.query); err != nil {
			return err
		}
		if p.format == formatTable {
			p.format = formatTSV
		}
	}
	switch p.format {
	case formatTSV:
		generic, err := toGeneric(v)
		if err != nil {
			return err
		}
		return writeTSV(p.w, generic)
	case formatJSON:
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(p.w, "%s\n", b)
		return err
	case formatYAML:
		generic, err := toGeneric(v)
		if err != nil {
			return err
		}
		b, err := yaml.Marshal(generic)
		if err != nil {
			return err
		}
		_, err = p.w.Write(b)
		return err
	}
	generic, err := toGeneric(v)
	if err != nil {
		return err
	}
	var rows []map[string]any
	switch g := generic.(type) {
	case []any:
		for _, e := range g {
			if m, ok := e.(map[string]any); ok {
				rows = append(rows, m)
			}
		}
	case map[string]any:
		rows = []map[string]any{g}
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	headers := make([]string, len(cols))
	for i, c := range cols {
		headers[i] = c.header
	}
	fmt.Fprintln(tw, strings.Join(headers, "\t"))
	for _, row := range rows {
		cells := make([]string, len(cols))
		for i, c := range cols {
			cells[i] = strings.ReplaceAll(c.cell(row), "\t", " ")
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// toGeneric round-trips v through JSON so YAML and tables see the same field
// names as JSON.
func toGeneric(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// selectPath follows a dotted path of object keys and list indexes.
func selectPath(v any, path string) (any, error) {
	cur := v
	for _, part := range strings.Split(path, ".") {
		switch x := cur.(type) {
		case map[string]any:
			next, ok := x[part]
			if !ok {
				return nil, usageErrorf("--query %s: no field %q here", path, part)
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(x) {
				return nil, usageErrorf("--query %s: %q is not an index of a list of %d", path, part, len(x))
			}
			cur = x[i]
		default:
			return nil, usageErrorf("--query %s: %q: the value there has no fields", path, part)
		}
	}
	return cur, nil
}

// writeTSV prints scalars as they are, a list one element per line and an
// object one key<TAB>value per line (az -o tsv's spirit, for shell scripts).
func writeTSV(w io.Writer, v any) error {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if m, ok := e.(map[string]any); ok {
				keys := sortedKeys(m)
				cells := make([]string, len(keys))
				for i, k := range keys {
					cells[i] = cellString(m[k])
				}
				fmt.Fprintln(w, strings.Join(cells, "\t"))
				continue
			}
			fmt.Fprintln(w, cellString(e))
		}
	case map[string]any:
		for _, k := range sortedKeys(x) {
			fmt.Fprintf(w, "%s\t%s\n", k, cellString(x[k]))
		}
	default:
		fmt.Fprintln(w, cellString(x))
	}
	return nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// print prints v with the -o format.
func (g *globals) print(v any, cols []column) error {
	p, err := g.printer()
	if err != nil {
		return err
	}
	return p.print(v, cols)
}
