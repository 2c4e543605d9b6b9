package contract

import (
	"strconv"

	"github.com/valyala/fastjson"
)

// Frame is a request body read as a data frame, without copying it. The
// shapes, tried in this order:
//
//   - {"dataframe_split": {"columns": [...], "index": [...], "data": [[...], ...]}}
//     (MLflow's split orientation; "index" is ignored);
//   - {"dataframe_records": [{...}, ...]} (MLflow's records orientation);
//   - {"instances" | "inputs" | "input_data": X} (MLflow's tensor keys and
//     Azure's input_data) where X is a list of records, a split object with
//     columns and data, or an object of columns;
//   - a top-level list of records, [{...}, ...] (what vetiver's clients send);
//   - a top-level object of columns, {"x1": [1, 2], "x2": [3, 4]} (the seed's
//     sample request); a scalar is a column of one value, and a column of one
//     value is recycled to the others' length, as R's data.frame() does.
//
// A record that lacks a column has NA there, as jsonlite reads it.
type Frame struct {
	kind    frameKind
	obj     *fastjson.Object // columns
	rows    []*fastjson.Value
	columns []*fastjson.Value // split: the names
	n       int
}

type frameKind uint8

const (
	frameColumns frameKind = iota + 1
	frameRecords
	frameSplit
)

// Read reads v as a frame; a non-empty result says why it cannot.
func (f *Frame) Read(v *fastjson.Value) string {
	switch v.Type() {
	case fastjson.TypeArray:
		return f.records(v, "the request body")
	case fastjson.TypeObject:
	default:
		return "the request body must be a JSON object or a list of records, not " + v.Type().String()
	}
	o, _ := v.Object()
	if s := o.Get("dataframe_split"); s != nil {
		return f.split(s, "dataframe_split")
	}
	if r := o.Get("dataframe_records"); r != nil {
		return f.records(r, "dataframe_records")
	}
	for _, key := range [...]string{"input_data", "inputs", "instances"} {
		x := o.Get(key)
		if x == nil {
			continue
		}
		switch x.Type() {
		case fastjson.TypeArray:
			return f.records(x, key)
		case fastjson.TypeObject:
			xo, _ := x.Object()
			if xo.Get("columns") != nil && xo.Get("data") != nil {
				return f.split(x, key)
			}
			return f.objectColumns(xo)
		}
		return key + " must be a list of records or an object of columns"
	}
	return f.objectColumns(o)
}

func (f *Frame) objectColumns(o *fastjson.Object) string {
	f.kind, f.obj, f.n = frameColumns, o, 0
	o.Visit(func(_ []byte, v *fastjson.Value) {
		n := 1
		if v.Type() == fastjson.TypeArray {
			a, _ := v.Array()
			n = len(a)
		}
		if n > f.n {
			f.n = n
		}
	})
	if o.Len() == 0 {
		f.n = 0
	}
	return ""
}

func (f *Frame) records(v *fastjson.Value, where string) string {
	rows, _ := v.Array()
	for i, r := range rows {
		if r.Type() != fastjson.TypeObject {
			return where + "[" + strconv.Itoa(i) + "] must be a record (an object of column: value); unnamed rows (tensors) cannot be checked against columns"
		}
	}
	f.kind, f.rows, f.n = frameRecords, rows, len(rows)
	return ""
}

func (f *Frame) split(v *fastjson.Value, where string) string {
	o, err := v.Object()
	if err != nil {
		return where + " must be an object with columns and data"
	}
	cols, data := o.Get("columns"), o.Get("data")
	if cols == nil || cols.Type() != fastjson.TypeArray {
		return where + ".columns must be a list of column names"
	}
	if data == nil || data.Type() != fastjson.TypeArray {
		return where + ".data must be a list of rows"
	}
	f.kind = frameSplit
	f.columns, _ = cols.Array()
	for i, c := range f.columns {
		if c.Type() != fastjson.TypeString {
			return where + ".columns[" + strconv.Itoa(i) + "] must be a string"
		}
	}
	f.rows, _ = data.Array()
	f.n = len(f.rows)
	return ""
}

// ragged reports rows or columns of the wrong length.
func (f *Frame) ragged() string {
	switch f.kind {
	case frameColumns:
		msg := ""
		f.obj.Visit(func(k []byte, v *fastjson.Value) {
			if msg != "" || v.Type() != fastjson.TypeArray {
				return
			}
			a, _ := v.Array()
			if len(a) != f.n && len(a) != 1 {
				msg = "column " + string(k) + " has " + strconv.Itoa(len(a)) + " values, others have " + strconv.Itoa(f.n) + "; every column needs one value per row"
			}
		})
		return msg
	case frameSplit:
		for i, r := range f.rows {
			a, err := r.Array()
			if err != nil || len(a) != len(f.columns) {
				return "data[" + strconv.Itoa(i) + "] must be a list of " + strconv.Itoa(len(f.columns)) + " values, one per column"
			}
		}
	}
	return ""
}

// Rows is the number of rows.
func (f *Frame) Rows() int { return f.n }

// Has reports whether the frame has the column.
func (f *Frame) Has(name string) bool {
	switch f.kind {
	case frameColumns:
		return f.obj.Get(name) != nil
	case frameRecords:
		for _, r := range f.rows {
			if r.Get(name) != nil {
				return true
			}
		}
	case frameSplit:
		return f.colIndex(name) >= 0
	}
	return false
}

func (f *Frame) colIndex(name string) int {
	for j, c := range f.columns {
		b, _ := c.StringBytes()
		if string(b) == name {
			return j
		}
	}
	return -1
}

// Value is the cell at row r of the column; nil means absent (NA).
func (f *Frame) Value(name string, r int) *fastjson.Value {
	switch f.kind {
	case frameColumns:
		v := f.obj.Get(name)
		if v == nil || v.Type() != fastjson.TypeArray {
			return v
		}
		a, _ := v.Array()
		switch {
		case len(a) == 1:
			return a[0]
		case r < len(a):
			return a[r]
		}
		return nil
	case frameRecords:
		return f.rows[r].Get(name)
	case frameSplit:
		j := f.colIndex(name)
		if j < 0 {
			return nil
		}
		a, _ := f.rows[r].Array()
		if j < len(a) {
			return a[j]
		}
	}
	return nil
}

// EachName calls fn with each column name (once per name) until it
// returns false. name is only valid during the call.
func (f *Frame) EachName(fn func(name []byte) bool) {
	switch f.kind {
	case frameColumns:
		ok := true
		f.obj.Visit(func(k []byte, _ *fastjson.Value) {
			if ok {
				ok = fn(k)
			}
		})
	case frameRecords:
		var seen map[string]bool
		for i, r := range f.rows {
			o, _ := r.Object()
			ok := true
			o.Visit(func(k []byte, _ *fastjson.Value) {
				if !ok {
					return
				}
				if i > 0 {
					if seen == nil {
						seen = map[string]bool{}
						f.rows[0].GetObject().Visit(func(k0 []byte, _ *fastjson.Value) { seen[string(k0)] = true })
					}
					if seen[string(k)] {
						return
					}
					seen[string(k)] = true
				}
				ok = fn(k)
			})
			if !ok {
				return
			}
		}
	case frameSplit:
		for _, c := range f.columns {
			b, _ := c.StringBytes()
			if !fn(b) {
				return
			}
		}
	}
}

// Infer reads a sample request (any shape Frame reads) and returns a
// prototype with one column per field: numbers are numeric, strings
// character, booleans logical. A column with no non-null value is an error:
// its type cannot be known.
func Infer(sample []byte) ([]Column, error) {
	var p fastjson.Parser
	v, err := p.ParseBytes(sample)
	if err != nil {
		return nil, invalid("the sample request is not JSON: %v", err)
	}
	var f Frame
	if msg := f.Read(v); msg != "" {
		return nil, invalid("%s", msg)
	}
	if msg := f.ragged(); msg != "" {
		return nil, invalid("%s", msg)
	}
	var cols []Column
	var bad error
	f.EachName(func(nb []byte) bool {
		name := string(nb)
		col := Column{Name: name}
		for r := 0; r < f.Rows() && col.Type == ""; r++ {
			switch c := f.Value(name, r); {
			case c == nil || c.Type() == fastjson.TypeNull:
			case c.Type() == fastjson.TypeNumber:
				col.Type = TypeNumeric
			case c.Type() == fastjson.TypeString:
				col.Type = TypeCharacter
			case c.Type() == fastjson.TypeTrue || c.Type() == fastjson.TypeFalse:
				col.Type = TypeLogical
			default:
				bad = invalid("sample column %s holds %s; a prototype column holds numbers, strings or booleans", name, c.Type())
				return false
			}
		}
		if col.Type == "" {
			bad = invalid("sample column %s has no value to infer its type from; give it one, or write the prototype yourself", name)
			return false
		}
		cols = append(cols, col)
		return true
	})
	if bad != nil {
		return nil, bad
	}
	return cols, checkColumns(cols)
}
