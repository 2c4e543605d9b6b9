// Package contract describes a deployment's input contract — a data-frame
// prototype (column names, types, factor levels) or a JSON Schema — and
// checks request bodies against it.
//
// The control plane builds a Contract (from a vetiver pin's prototype, from
// model create --prototype, from a deployment's plumbline.input, or inferred
// from a sample request) and stores it in the deployment's plan; the gateway
// compiles it once per routing snapshot and checks every scoring request
// before it reaches the model.
//
// A request body may take any of the shapes plumbline's built-in scorers
// read (see Frame): MLflow's dataframe_split and dataframe_records, the
// instances / inputs / input_data wrappers, a JSON array of records
// (vetiver), or an object of column arrays (the seed's sample request).
//
// This package imports no other plumbline package.
package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Column types, named as R names them (vetiver's prototype uses the same
// words).
const (
	TypeNumeric   = "numeric"
	TypeInteger   = "integer"
	TypeCharacter = "character"
	TypeLogical   = "logical"
	TypeFactor    = "factor"
	TypeDate      = "Date"
	TypePOSIXct   = "POSIXct"
)

// Policies.
const (
	Reject = "reject"
	Ignore = "ignore" // extra columns pass through
	Allow  = "allow"  // all-NA columns pass through
)

// ErrInvalid marks a contract (or a prototype or schema) that cannot be
// used.
var ErrInvalid = errors.New("invalid input contract")

// Column is one column of a data-frame prototype.
type Column struct {
	Name string `json:"name"`
	// Type is one of the Type* constants.
	Type string `json:"type"`
	// Levels are a factor's levels, in order; nil for other types.
	Levels []string `json:"levels,omitempty"`
}

// Contract is what a deployment's requests must look like. Exactly one of
// Columns and JSONSchema is set.
type Contract struct {
	// Columns is the data-frame prototype, in order.
	Columns []Column `json:"columns,omitempty"`
	// JSONSchema is a JSON Schema (any draft the gateway's validator reads;
	// 2020-12 when $schema is absent) for the whole request body.
	JSONSchema json.RawMessage `json:"json_schema,omitempty"`
	// ExtraColumns is Reject (default) or Ignore: what happens to columns
	// the prototype does not name.
	ExtraColumns string `json:"extra_columns,omitempty"`
	// AllNAColumns is Reject (default) or Allow: what happens to a column
	// whose every value is null.
	AllNAColumns string `json:"all_na_columns,omitempty"`
	// Source says where the contract came from, for people ("vetiver pin
	// iris-rf", "model create --prototype", "deployment plumbline.input").
	Source string `json:"source,omitempty"`
}

// Validate checks that the contract can be compiled.
func (c *Contract) Validate() error {
	_, err := Compile(c)
	return err
}

// RejectsExtra reports whether columns outside the prototype are refused.
func (c *Contract) RejectsExtra() bool { return !strings.EqualFold(c.ExtraColumns, Ignore) }

// RejectsAllNA reports whether all-null columns are refused.
func (c *Contract) RejectsAllNA() bool { return !strings.EqualFold(c.AllNAColumns, Allow) }

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// typeAliases maps the names people and packages use to the canonical ones.
var typeAliases = map[string]string{
	"numeric": TypeNumeric, "double": TypeNumeric, "dbl": TypeNumeric, "num": TypeNumeric, "number": TypeNumeric, "float": TypeNumeric,
	"integer": TypeInteger, "int": TypeInteger,
	"character": TypeCharacter, "chr": TypeCharacter, "string": TypeCharacter, "str": TypeCharacter,
	"logical": TypeLogical, "lgl": TypeLogical, "boolean": TypeLogical, "bool": TypeLogical,
	"factor": TypeFactor, "fct": TypeFactor, "ordered": TypeFactor,
	"date":    TypeDate,
	"posixct": TypePOSIXct, "datetime": TypePOSIXct, "dttm": TypePOSIXct,
}

func canonicalType(t string) (string, bool) {
	c, ok := typeAliases[strings.ToLower(strings.TrimSpace(t))]
	return c, ok
}

// ParsePrototype reads a prototype written as a JSON object, keeping the
// order of its columns. Each value is either vetiver's /prototype form,
// {"type": "numeric", "example": …, "details": {"levels": […]}}, or just
// the type's name, "numeric". Types: numeric (double), integer, character,
// logical, factor (needs details.levels, or "levels" next to "type"), Date,
// POSIXct.
func ParsePrototype(b []byte) ([]Column, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return nil, invalid("the prototype is not JSON: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, invalid(`a prototype is a JSON object, one key per column: {"sepal_length": "numeric", "species": {"type": "factor", "details": {"levels": ["a", "b"]}}}`)
	}
	var cols []Column
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, invalid("the prototype is not JSON: %v", err)
		}
		name, _ := tok.(string)
		var raw any
		if err := dec.Decode(&raw); err != nil {
			return nil, invalid("the prototype is not JSON (column %s): %v", name, err)
		}
		col, err := columnOf(name, raw)
		if err != nil {
			return nil, err
		}
		cols = append(cols, col)
	}
	if _, err := dec.Token(); err != nil && !errors.Is(err, io.EOF) {
		return nil, invalid("the prototype is not JSON: %v", err)
	}
	return cols, checkColumns(cols)
}

// PrototypeFromMap reads a prototype given as a decoded mapping (a YAML
// deployment's plumbline.input.prototype). A mapping has no order, so the
// columns come back sorted by name.
func PrototypeFromMap(m map[string]any) ([]Column, error) {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	cols := make([]Column, 0, len(names))
	for _, n := range names {
		col, err := columnOf(n, m[n])
		if err != nil {
			return nil, err
		}
		cols = append(cols, col)
	}
	return cols, checkColumns(cols)
}

func columnOf(name string, v any) (Column, error) {
	col := Column{Name: name}
	var typ string
	switch x := v.(type) {
	case string:
		typ = x
	case map[string]any:
		t, _ := x["type"].(string)
		typ = t
		levels := x["levels"]
		if d, ok := x["details"].(map[string]any); ok && levels == nil {
			levels = d["levels"]
		}
		if ls, ok := levels.([]any); ok {
			for _, l := range ls {
				s, ok := l.(string)
				if !ok {
					return col, invalid("prototype column %s: factor levels must be strings; got %v", name, l)
				}
				col.Levels = append(col.Levels, s)
			}
		}
	default:
		return col, invalid(`prototype column %s: give its type, "numeric", or {"type": "factor", "details": {"levels": [...]}}; got %v`, name, v)
	}
	t, ok := canonicalType(typ)
	if !ok {
		return col, invalid("prototype column %s: unknown type %q; use numeric, integer, character, logical, factor, Date or POSIXct", name, typ)
	}
	col.Type = t
	if t == TypeFactor && len(col.Levels) == 0 {
		return col, invalid(`prototype column %s: a factor needs its levels: {"type": "factor", "details": {"levels": ["a", "b"]}}`, name)
	}
	if t != TypeFactor {
		col.Levels = nil
	}
	return col, nil
}

func checkColumns(cols []Column) error {
	if len(cols) == 0 {
		return invalid("the prototype has no columns")
	}
	seen := make(map[string]bool, len(cols))
	for _, c := range cols {
		if c.Name == "" {
			return invalid("a prototype column has an empty name")
		}
		if seen[c.Name] {
			return invalid("prototype column %s appears twice", c.Name)
		}
		seen[c.Name] = true
	}
	return nil
}

// PrototypeJSON is the contract's prototype in vetiver's /prototype form:
// one key per column, in order, each {"type", "example", "details"}, with a
// factor's levels in details.levels. It is nil for a JSON Schema contract.
func (c *Contract) PrototypeJSON() []byte {
	if len(c.Columns) == 0 {
		return nil
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, col := range c.Columns {
		if i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(col.Name)
		b.Write(name)
		b.WriteString(`:{"type":`)
		t, _ := json.Marshal(col.Type)
		b.Write(t)
		b.WriteString(`,"example":null,"details":{`)
		if len(col.Levels) > 0 {
			l, _ := json.Marshal(col.Levels)
			b.WriteString(`"levels":`)
			b.Write(l)
		}
		b.WriteString("}}")
	}
	b.WriteByte('}')
	return b.Bytes()
}

// Document is the contract as published at /endpoints/<e>/prototype: the
// prototype (vetiver's form) or the JSON Schema, and the policies.
func (c *Contract) Document() []byte {
	type doc struct {
		Prototype    json.RawMessage `json:"prototype,omitempty"`
		JSONSchema   json.RawMessage `json:"json_schema,omitempty"`
		ExtraColumns string          `json:"extra_columns,omitempty"`
		AllNAColumns string          `json:"all_na_columns,omitempty"`
		Source       string          `json:"source,omitempty"`
	}
	d := doc{JSONSchema: c.JSONSchema, Source: c.Source}
	if p := c.PrototypeJSON(); p != nil {
		d.Prototype = p
		d.ExtraColumns, d.AllNAColumns = Reject, Reject
		if !c.RejectsExtra() {
			d.ExtraColumns = Ignore
		}
		if !c.RejectsAllNA() {
			d.AllNAColumns = Allow
		}
	}
	b, _ := json.Marshal(d)
	return b
}
