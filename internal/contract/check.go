package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/valyala/fastjson"
)

// MaxProblems bounds the problems one check reports; the last one says how
// many more there were.
const MaxProblems = 20

// Problem is one way a request breaks the contract.
type Problem struct {
	// Field names the column, the cell (sepal_length[2], 0-based as in the
	// JSON) or, for a JSON Schema, the JSON pointer; "" for the body.
	Field string `json:"field"`
	// Message says what is wrong and how to fix it.
	Message string `json:"message"`
}

// Checker is a compiled contract. Safe for concurrent use.
type Checker struct {
	c       *Contract
	cols    []Column
	byName  map[string]int
	levels  []map[string]struct{} // per column; nil unless a factor
	schema  *jsonschema.Schema
	extra   bool // reject extra columns
	allNA   bool // reject all-null columns
	wrapped bool
}

// Compile checks c and returns its Checker.
func Compile(c *Contract) (*Checker, error) {
	if c == nil {
		return nil, invalid("no contract")
	}
	k := &Checker{c: c, extra: c.RejectsExtra(), allNA: c.RejectsAllNA()}
	for _, p := range []struct{ name, v string }{{"extra_columns", c.ExtraColumns}, {"all_na_columns", c.AllNAColumns}} {
		switch strings.ToLower(p.v) {
		case "", Reject, Ignore, Allow:
		default:
			return nil, invalid("%s %q: use reject, or %s", p.name, p.v, map[string]string{"extra_columns": "ignore", "all_na_columns": "allow"}[p.name])
		}
	}
	switch {
	case len(c.Columns) > 0 && len(c.JSONSchema) > 0:
		return nil, invalid("a contract has a prototype or a JSON Schema, not both")
	case len(c.Columns) > 0:
		if err := checkColumns(c.Columns); err != nil {
			return nil, err
		}
		k.cols = c.Columns
		k.byName = make(map[string]int, len(c.Columns))
		k.levels = make([]map[string]struct{}, len(c.Columns))
		for i, col := range c.Columns {
			if _, ok := canonicalType(col.Type); !ok {
				return nil, invalid("column %s: unknown type %q", col.Name, col.Type)
			}
			k.byName[col.Name] = i
			if col.Type == TypeFactor {
				if len(col.Levels) == 0 {
					return nil, invalid("column %s: a factor needs its levels", col.Name)
				}
				set := make(map[string]struct{}, len(col.Levels))
				for _, l := range col.Levels {
					set[l] = struct{}{}
				}
				k.levels[i] = set
			}
		}
	case len(c.JSONSchema) > 0:
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(c.JSONSchema))
		if err != nil {
			return nil, invalid("the JSON Schema is not JSON: %v", err)
		}
		comp := jsonschema.NewCompiler()
		if err := comp.AddResource("contract.json", doc); err != nil {
			return nil, invalid("JSON Schema: %v", err)
		}
		s, err := comp.Compile("contract.json")
		if err != nil {
			return nil, invalid("JSON Schema: %v", err)
		}
		k.schema = s
	default:
		return nil, invalid("a contract needs a prototype (columns) or a JSON Schema")
	}
	return k, nil
}

// Contract returns the contract k was compiled from.
func (k *Checker) Contract() *Contract { return k.c }

// Check checks body and appends its problems to out; none means the body
// keeps the contract. p parses the body (reuse one per goroutine, or take
// them from a fastjson.ParserPool): for a prototype the check allocates
// nothing when the body is valid.
func (k *Checker) Check(body []byte, p *fastjson.Parser, out []Problem) []Problem {
	if k.schema != nil {
		return k.checkSchema(body, out)
	}
	v, err := p.ParseBytes(body)
	if err != nil {
		return append(out, Problem{Message: "the request body is not JSON: " + err.Error()})
	}
	var f Frame
	if msg := f.Read(v); msg != "" {
		return append(out, Problem{Message: msg})
	}
	return k.checkFrame(&f, out)
}

func (k *Checker) checkFrame(f *Frame, out []Problem) []Problem {
	start := len(out)
	add := func(field, msg string) bool {
		if len(out)-start >= MaxProblems {
			return false
		}
		out = append(out, Problem{Field: field, Message: msg})
		return true
	}
	if msg := f.ragged(); msg != "" {
		add("", msg)
		return out
	}
	n := f.Rows()
	for i, col := range k.cols {
		if !f.Has(col.Name) {
			if !add(col.Name, "missing column "+col.Name) {
				break
			}
			continue
		}
		nulls := 0
		for r := 0; r < n; r++ {
			v := f.Value(col.Name, r)
			if v == nil || v.Type() == fastjson.TypeNull {
				nulls++
				continue
			}
			if msg := k.cellProblem(i, col, v); msg != "" {
				field := cell(col.Name, r)
				if !add(field, field+": "+msg) {
					return k.more(out, start)
				}
			}
		}
		if k.allNA && n > 0 && nulls == n {
			if !add(col.Name, col.Name+": every value is null (NA); the model cannot use an all-NA column: send values, or set the contract's all_na_columns to allow") {
				return k.more(out, start)
			}
		}
	}
	if k.extra {
		f.EachName(func(nb []byte) bool {
			if _, ok := k.byName[string(nb)]; !ok {
				name := string(nb)
				return add(name, "unexpected column "+name+": the input contract does not name it (columns: "+k.names()+"); remove it, or set the contract's extra_columns to ignore")
			}
			return true
		})
	}
	if len(out)-start >= MaxProblems {
		return k.more(out, start)
	}
	return out
}

func (k *Checker) more(out []Problem, start int) []Problem {
	if len(out)-start >= MaxProblems {
		out[len(out)-1] = Problem{Message: fmt.Sprintf("more than %d problems; fix these first", MaxProblems-1)}
	}
	return out
}

func (k *Checker) names() string {
	var b strings.Builder
	for i, c := range k.cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c.Name)
	}
	return b.String()
}

func cell(name string, row int) string { return name + "[" + strconv.Itoa(row) + "]" }

// cellProblem checks one non-null value against column i; "" means fine.
func (k *Checker) cellProblem(i int, col Column, v *fastjson.Value) string {
	switch col.Type {
	case TypeNumeric:
		if v.Type() == fastjson.TypeNumber {
			return ""
		}
		return "expected a number, got " + show(v)
	case TypeInteger:
		if v.Type() == fastjson.TypeNumber {
			if f, err := v.Float64(); err == nil && f == math.Trunc(f) {
				return ""
			}
		}
		return "expected a whole number, got " + show(v)
	case TypeLogical:
		if t := v.Type(); t == fastjson.TypeTrue || t == fastjson.TypeFalse {
			return ""
		}
		return "expected true or false, got " + show(v)
	case TypeCharacter:
		if v.Type() == fastjson.TypeString {
			return ""
		}
		return "expected a string, got " + show(v)
	case TypeFactor:
		if v.Type() != fastjson.TypeString {
			return "expected one of the levels " + strings.Join(col.Levels, ", ") + ", got " + show(v)
		}
		b, _ := v.StringBytes()
		if _, ok := k.levels[i][string(b)]; ok {
			return ""
		}
		return show(v) + " is not one of the levels " + strings.Join(col.Levels, ", ")
	case TypeDate:
		if v.Type() == fastjson.TypeString {
			b, _ := v.StringBytes()
			if _, err := time.Parse(time.DateOnly, string(b)); err == nil {
				return ""
			}
		}
		return "expected a date (YYYY-MM-DD), got " + show(v)
	case TypePOSIXct:
		if v.Type() == fastjson.TypeString {
			b, _ := v.StringBytes()
			s := string(b)
			for _, layout := range []string{time.RFC3339Nano, time.DateTime, "2006-01-02T15:04:05", time.DateOnly} {
				if _, err := time.Parse(layout, s); err == nil {
					return ""
				}
			}
		}
		return "expected a date-time (2006-01-02T15:04:05Z), got " + show(v)
	}
	return ""
}

// show renders a value for a message, cut to 40 characters.
func show(v *fastjson.Value) string {
	s := string(v.MarshalTo(nil))
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return s
}

func (k *Checker) checkSchema(body []byte, out []Problem) []Problem {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return append(out, Problem{Message: "the request body is not JSON: " + err.Error()})
	}
	err = k.schema.Validate(inst)
	if err == nil {
		return out
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return append(out, Problem{Message: err.Error()})
	}
	for _, u := range leaves(ve.BasicOutput()) {
		if len(out) >= MaxProblems {
			break
		}
		out = append(out, u)
	}
	return out
}

// leaves flattens a validator's output into one problem per failing place.
func leaves(u *jsonschema.OutputUnit) []Problem {
	var out []Problem
	var walk func(u *jsonschema.OutputUnit)
	walk = func(u *jsonschema.OutputUnit) {
		if len(u.Errors) == 0 {
			if u.Error != nil {
				field := u.InstanceLocation
				msg := u.Error.String()
				if field != "" {
					msg = field + ": " + msg
				}
				out = append(out, Problem{Field: field, Message: msg})
			}
			return
		}
		for i := range u.Errors {
			walk(&u.Errors[i])
		}
	}
	walk(u)
	return out
}

// MarshalProblems is the 422 body: {"error": {"code", "message", "details"}}.
func MarshalProblems(ps []Problem) []byte {
	type inner struct {
		Code    string    `json:"code"`
		Message string    `json:"message"`
		Details []Problem `json:"details"`
	}
	msg := "the request does not match the deployment's input contract: " + ps[0].Message
	if len(ps) > 1 {
		msg = fmt.Sprintf("the request does not match the deployment's input contract (%d problems; see details)", len(ps))
	}
	b, _ := json.Marshal(struct {
		Error inner `json:"error"`
	}{inner{Code: "InputContractViolation", Message: msg, Details: ps}})
	return b
}
