package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	jmespath "github.com/jmespath-community/go-jmespath"
	"github.com/jmespath-community/go-jmespath/pkg/parsing"
	"go.yaml.in/yaml/v3"
)

// Output formats for -o, as az names them.
const (
	formatJSON  = "json"
	formatJSONC = "jsonc"
	formatYAML  = "yaml"
	formatYAMLC = "yamlc"
	formatTable = "table"
	formatTSV   = "tsv"
	formatNone  = "none"
)

// resolveFormat picks the output format: the flag if given, else table on a
// terminal and JSON otherwise (so scripts get JSON, as from az).
func resolveFormat(flag string, w io.Writer) (string, error) {
	switch f := strings.ToLower(flag); f {
	case "":
		if isTerminal(w) {
			return formatTable, nil
		}
		return formatJSON, nil
	case formatJSON, formatJSONC, formatYAML, formatYAMLC, formatTable, formatTSV, formatNone:
		return f, nil
	case "yml":
		return formatYAML, nil
	}
	return "", usageErrorf("--output %q: want json, jsonc, yaml, yamlc, table, tsv or none", flag)
}

// column is one table column: a header and how to read a cell from a row
// decoded as a generic JSON object. Columns shape the table of a command's
// whole result; a --query result is tabled the way az does it.
type column struct {
	header string
	cell   func(row map[string]any) string
}

// field is a column showing one top-level field.
func field(header, name string) column {
	return column{header: header, cell: func(row map[string]any) string { return cellString(row[name]) }}
}

// cellString renders a value in plumbline's own tables.
func cellString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return formatNumber(x)
	case bool:
		return fmt.Sprint(x)
	case map[string]any:
		keys := sortedKeys(x)
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

// query is a compiled --query: a JMESPath expression, as az takes it.
type query struct {
	expr string
	jp   jmespath.JMESPath
	// orders are the key lists of the expression's multiselect hashes
	// ({Name:name,State:provisioning_state}), in the order written: az
	// prints such objects' fields in that order in tsv and table output.
	orders [][]string
}

// compileQuery compiles a --query expression; a syntax error is a usage
// error that shows where the expression went wrong.
func compileQuery(expr string) (*query, error) {
	jp, err := jmespath.Compile(expr)
	if err != nil {
		msg := fmt.Sprintf("--query %q is not a valid JMESPath expression: %v", expr, err)
		var se jmespath.SyntaxError
		if e, ok := err.(jmespath.SyntaxError); ok {
			se = e
			msg += "\n  " + expr + "\n  " + strings.Repeat(" ", se.Offset) + "^"
		}
		if dottedIndex.MatchString(expr) {
			msg += "\nIndex lists with brackets: instances[0].name, not instances.0.name."
		}
		msg += "\nSee https://jmespath.org for the syntax; examples: --query traffic, --query \"[0].name\", --query \"[?provisioning_state=='Succeeded'].name\"."
		return nil, usageErrorf("%s", msg)
	}
	q := &query{expr: expr, jp: jp}
	if ast, err := jmespath.NewParser().Parse(expr); err == nil {
		q.collectOrders(ast)
	}
	return q, nil
}

var dottedIndex = regexp.MustCompile(`\.[0-9]+`)

func (q *query) collectOrders(n parsing.ASTNode) {
	if n.NodeType == parsing.ASTMultiSelectHash {
		var keys []string
		for _, kv := range n.Children {
			if k, ok := kv.Value.(string); ok {
				keys = append(keys, k)
			}
		}
		q.orders = append(q.orders, keys)
	}
	for _, c := range n.Children {
		q.collectOrders(c)
	}
}

// keysOf lists m's keys: in the order a multiselect hash of the query
// wrote them when m is one, else sorted.
func (q *query) keysOf(m map[string]any) []string {
	if q != nil {
		for _, order := range q.orders {
			if len(order) != len(m) {
				continue
			}
			all := true
			for _, k := range order {
				if _, ok := m[k]; !ok {
					all = false
					break
				}
			}
			if all {
				return order
			}
		}
	}
	return sortedKeys(m)
}

// printer writes command results in the chosen format.
type printer struct {
	w      io.Writer
	format string
	color  bool // jsonc and yamlc on a terminal
	query  *query
}

// print writes v (a value or a slice of values), or the part of it --query
// selects, in the -o format. Tables of the whole result use cols.
func (p *printer) print(v any, cols []column) error {
	if p.format == formatNone {
		return nil
	}
	generic, err := toGeneric(v)
	if err != nil {
		return err
	}
	if p.query != nil {
		if generic, err = p.query.jp.Search(generic); err != nil {
			return fmt.Errorf("--query %q: %w", p.query.expr, err)
		}
		if generic == nil {
			return nil // az prints nothing for a null result
		}
	}
	switch p.format {
	case formatJSON, formatJSONC:
		return writeJSON(p.w, generic, p.color)
	case formatYAML, formatYAMLC:
		return writeYAML(p.w, generic, p.color)
	case formatTSV:
		return writeTSV(p.w, generic, p.query)
	}
	if p.query != nil {
		return writeAutoTable(p.w, generic, p.query)
	}
	return writeTable(p.w, generic, cols)
}

// toGeneric round-trips v through JSON so every format sees the same field
// names and values as JSON.
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

// writeJSON prints v as az does: keys sorted, two-space indent, non-ASCII
// and <>& as they are.
func writeJSON(w io.Writer, v any, color bool) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	out := buf.Bytes()
	if color {
		out = colorJSON(out)
	}
	_, err := w.Write(out)
	return err
}

func writeYAML(w io.Writer, v any, color bool) error {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	out := buf.Bytes()
	if color {
		out = colorYAML(out)
	}
	_, err := w.Write(out)
	return err
}

// writeTSV prints v as az -o tsv does: a list one element per line, anything
// else as one line; an object's values tab-separated (in the query's order
// for a multiselect hash, else by sorted key), a nested list as its length
// and a nested object as an empty cell, so every line has the same columns.
func writeTSV(w io.Writer, v any, q *query) error {
	rows, ok := v.([]any)
	if !ok {
		rows = []any{v}
	}
	var b strings.Builder
	for _, row := range rows {
		switch x := row.(type) {
		case map[string]any:
			for i, k := range q.keysOf(x) {
				if i > 0 {
					b.WriteByte('\t')
				}
				b.WriteString(tsvCell(x[k]))
			}
		case []any:
			for i, e := range x {
				if i > 0 {
					b.WriteByte('\t')
				}
				b.WriteString(tsvCell(e))
			}
		case bool:
			b.WriteString(strconv.FormatBool(x))
		default:
			b.WriteString(tsvCell(x))
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// tsvCell is one value in a tsv line, written as az (Python's str) writes it.
func tsvCell(v any) string {
	switch x := v.(type) {
	case []any:
		return strconv.Itoa(len(x))
	case map[string]any:
		return ""
	}
	return pyStr(v)
}

// pyStr writes a JSON value the way Python's str() does, which is how az's
// tsv and table output show scalars: True, False, None, 100, 0.5, 1e-05.
func pyStr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case string:
		return x
	case bool:
		if x {
			return "True"
		}
		return "False"
	case float64:
		return formatNumber(x)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// formatNumber writes a JSON number: whole numbers as integers, others
// with Python's repr rules (an exponent below 1e-4 or from 1e16 on).
func formatNumber(f float64) string {
	switch a := math.Abs(f); {
	case f == math.Trunc(f) && a < 1e16:
		return strconv.FormatFloat(f, 'f', 0, 64)
	case a >= 1e-4 && a < 1e16:
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'e', -1, 64)
}

// tableSkip are the fields az leaves out of automatic tables.
var tableSkip = map[string]bool{"id": true, "type": true, "etag": true}

// writeAutoTable prints a --query result as az -o table does: one row per
// element of a list (or one row); an object's scalar fields as columns
// headed by the field name with its first letter capitalised (id, type and
// etag, lists and objects left out); a list's elements as Column1…;
// a scalar as Result.
func writeAutoTable(w io.Writer, v any, q *query) error {
	items, ok := v.([]any)
	if !ok {
		items = []any{v}
	}
	var headers []string
	seen := map[string]bool{}
	rows := make([]map[string]string, 0, len(items))
	for _, it := range items {
		row := map[string]string{}
		add := func(h, cell string) {
			if !seen[h] {
				seen[h] = true
				headers = append(headers, h)
			}
			row[h] = cell
		}
		switch x := it.(type) {
		case map[string]any:
			for _, k := range q.keysOf(x) {
				val := x[k]
				if tableSkip[k] || val == nil {
					continue
				}
				switch val.(type) {
				case []any, map[string]any:
					continue
				}
				add(capitalize(k), pyStr(val))
			}
		case []any:
			for i, e := range x {
				add("Column"+strconv.Itoa(i+1), pyStr(e))
			}
		default:
			add("Result", pyStr(x))
		}
		rows = append(rows, row)
	}
	if len(headers) == 0 {
		if len(items) == 0 {
			return nil
		}
		return fmt.Errorf("table output unavailable for --query %q: its result has no scalar fields; choose some, e.g. --query \"{Name:name}\", or use -o json", q.expr)
	}
	// Columns as Python's tabulate "simple" format draws them: at least
	// two wider than the header, two spaces apart, a dashed rule.
	widths := make([]int, len(headers))
	for i, h := range headers {
		widths[i] = utf8.RuneCountInString(h) + 2
		for _, r := range rows {
			widths[i] = max(widths[i], utf8.RuneCountInString(r[h]))
		}
	}
	var b strings.Builder
	line := func(cell func(i int) string) {
		var l strings.Builder
		for i := range headers {
			if i > 0 {
				l.WriteString("  ")
			}
			c := cell(i)
			l.WriteString(c + strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)))
		}
		b.WriteString(strings.TrimRight(l.String(), " ") + "\n")
	}
	line(func(i int) string { return headers[i] })
	line(func(i int) string { return strings.Repeat("-", widths[i]) })
	for _, r := range rows {
		line(func(i int) string { return r[headers[i]] })
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func capitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return strings.ToUpper(string(r)) + s[n:]
}

// writeTable prints a command's whole result with its columns, one row per
// element (a single value is one row).
func writeTable(w io.Writer, v any, cols []column) error {
	var rows []map[string]any
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if m, ok := e.(map[string]any); ok {
				rows = append(rows, m)
			}
		}
	case map[string]any:
		rows = []map[string]any{x}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
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
