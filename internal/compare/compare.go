// Package compare compares two answers of a scoring request at the
// prediction level: the live deployment's and its shadow's. It is
// JSON-aware: numbers agree within a tolerance, strings (classes) and
// booleans must be equal, arrays are compared element by element and objects
// member by member. A JSONPath selects the predictions in an answer.
//
// It is a leaf: it must not import anything of plumbline's.
package compare

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/theory/jsonpath"
)

// DefaultTolerance is the absolute tolerance when Config sets none.
const DefaultTolerance = 1e-9

// Config says how answers are compared (an endpoint's plumbline.compare).
type Config struct {
	// Path is a JSONPath selecting the predictions; "" means the whole
	// answer, unwrapped (see Comparer).
	Path string
	// Tolerance is the absolute difference under which two numbers agree;
	// zero means they must be equal (callers pass DefaultTolerance when the
	// user set none).
	Tolerance float64
	// RelativeTolerance lets numbers agree within this share of the larger
	// magnitude; zero means none.
	RelativeTolerance float64
}

// Comparer compares answers. Safe for concurrent use.
type Comparer struct {
	path     *jsonpath.Path // nil: the whole answer, unwrapped
	pathText string
	tol, rel float64
}

// New compiles cfg.
func New(cfg Config) (*Comparer, error) {
	c := &Comparer{tol: max(0, cfg.Tolerance), rel: max(0, cfg.RelativeTolerance), pathText: cfg.Path}
	if cfg.Path != "" {
		p, err := jsonpath.Parse(cfg.Path)
		if err != nil {
			return nil, fmt.Errorf("compare path %q: %w", cfg.Path, err)
		}
		c.path = p
	}
	return c, nil
}

// Outcome is the comparison of one pair of answers.
type Outcome struct {
	// Comparable is false when the pair could not be compared (Reason says
	// why: an answer that is not JSON, a path that selects nothing).
	Comparable bool
	Reason     string
	// Predictions is how many predictions were compared (the longer side's
	// count), Agreed how many agreed.
	Predictions, Agreed int
	// Deltas are |live − shadow| of every pair of numbers compared.
	Deltas []float64
	// Classes are the (live, shadow) labels of every prediction that is a
	// string or a boolean on both sides.
	Classes [][2]string
	// Diff describes the first disagreement ("" when all agree), e.g.
	// `[3]: "setosa" vs "versicolor"`.
	Diff string
}

// Agree reports whether every prediction agreed.
func (o *Outcome) Agree() bool { return o.Comparable && o.Agreed == o.Predictions }

// Compare compares a live answer with a shadow answer.
func (c *Comparer) Compare(live, shadow []byte) Outcome {
	lv, err := decode(live)
	if err != nil {
		return Outcome{Reason: "the live answer is not JSON"}
	}
	sv, err := decode(shadow)
	if err != nil {
		return Outcome{Reason: "the shadow answer is not JSON"}
	}
	lp, ok := c.predictions(lv)
	if !ok {
		return Outcome{Reason: "path " + c.pathText + " selects nothing in the live answer"}
	}
	sp, ok := c.predictions(sv)
	if !ok {
		return Outcome{Reason: "path " + c.pathText + " selects nothing in the shadow answer"}
	}
	o := Outcome{Comparable: true, Predictions: max(len(lp), len(sp))}
	for i := range o.Predictions {
		where := "[" + strconv.Itoa(i) + "]"
		if i >= len(lp) || i >= len(sp) {
			if o.Diff == "" {
				o.Diff = fmt.Sprintf("%d predictions live, %d shadow", len(lp), len(sp))
			}
			continue
		}
		a, b := lp[i], sp[i]
		if la, lok := label(a); lok {
			if lb, sok := label(b); sok {
				o.Classes = append(o.Classes, [2]string{la, lb})
			}
		}
		if c.equal(a, b, where, &o) {
			o.Agreed++
		}
	}
	return o
}

// predictions selects the predictions of an answer: the path's nodes (an
// array as its elements), or without a path the answer unwrapped: an object
// with one member is replaced by that member's value, repeatedly, and an
// array is its elements. So plumber's {"species": ["setosa", …]} is a list
// of classes and {"prediction": 0.42} one number.
func (c *Comparer) predictions(v any) ([]any, bool) {
	if c.path == nil {
		for {
			m, ok := v.(map[string]any)
			if !ok || len(m) != 1 {
				break
			}
			for _, x := range m {
				v = x
			}
		}
		if a, ok := v.([]any); ok {
			return a, true
		}
		return []any{v}, true
	}
	nodes := c.path.Select(v)
	switch len(nodes) {
	case 0:
		return nil, false
	case 1:
		if a, ok := nodes[0].([]any); ok {
			return a, true
		}
	}
	return nodes, true
}

// equal compares a and b, noting numeric deltas and the first difference.
func (c *Comparer) equal(a, b any, where string, o *Outcome) bool {
	switch x := a.(type) {
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return c.differ(o, where, a, b)
		}
		fx, ex := x.Float64()
		fy, ey := y.Float64()
		if ex != nil || ey != nil {
			return x == y || c.differ(o, where, a, b)
		}
		d := math.Abs(fx - fy)
		if !math.IsNaN(d) && !math.IsInf(d, 0) {
			o.Deltas = append(o.Deltas, d)
		}
		if d <= c.tol || (c.rel > 0 && d <= c.rel*math.Max(math.Abs(fx), math.Abs(fy))) {
			return true
		}
		return c.differ(o, where, a, b)
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			return c.differ(o, where, a, b)
		}
		keys := make([]string, 0, len(x)+len(y))
		for k := range x {
			keys = append(keys, k)
		}
		for k := range y {
			if _, dup := x[k]; !dup {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		same := true
		for _, k := range keys {
			av, aok := x[k]
			bv, bok := y[k]
			w := where + "." + k
			if !aok || !bok {
				same = c.differ(o, w, av, bv) && same
				continue
			}
			if !c.equal(av, bv, w, o) {
				same = false
			}
		}
		return same
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return c.differ(o, where, a, b)
		}
		same := true
		for i := range x {
			if !c.equal(x[i], y[i], where+"["+strconv.Itoa(i)+"]", o) {
				same = false
			}
		}
		return same
	default: // string, bool, nil
		if a == b {
			return true
		}
		return c.differ(o, where, a, b)
	}
}

// differ notes the first difference and returns false.
func (c *Comparer) differ(o *Outcome, where string, a, b any) bool {
	if o.Diff == "" {
		o.Diff = where + ": " + short(a) + " vs " + short(b)
	}
	return false
}

// short is v's JSON text, cut to 60 bytes.
func short(v any) string {
	if v == nil {
		return "missing or null"
	}
	b, _ := json.Marshal(v)
	if len(b) > 60 {
		return string(b[:57]) + "..."
	}
	return string(b)
}

// label is a categorical prediction's class: a string, or a boolean.
func label(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

func decode(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("more than one JSON value")
	}
	return v, nil
}

// Path is the configured path, "" for the whole answer.
func (c *Comparer) Path() string { return strings.TrimSpace(c.pathText) }
