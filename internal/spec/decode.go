package spec

import (
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// The decoder walks a yaml.Node tree into the typed structs. Field names
// come from the structs' json tags (Azure's snake_case YAML names); a
// `spec` struct tag adds options:
//
//	spec:"ignored"          accepted for Azure compatibility, reported as a Notice
//	spec:"lowerkeys"        map keys are lower-cased (traffic keys)
//	spec:"unit=milliseconds" shown in type errors: "expected an integer (milliseconds)"
//
// Types may take over their own decoding (nodeUnmarshaler), list read-only
// keys that are accepted and ignored (readOnlyFielder), or explain a known
// wrong key better than "unknown field" (fieldHinter).

type nodeUnmarshaler interface {
	unmarshalNode(d *decoder, path string, n *yaml.Node)
}

type readOnlyFielder interface {
	readOnlyFields() []string
}

type fieldHinter interface {
	unknownFieldHint(key string) string
}

// fieldPos is where a field was found.
type fieldPos struct {
	line, col int    // the value for scalars, the key for mappings and lists
	set       string // the --set expression, when the value came from one
}

type decoder struct {
	t       *tree
	errs    Errors
	pos     map[string]fieldPos
	notices []Notice
	noticed map[string]bool
}

func newDecoder(t *tree) *decoder {
	return &decoder{t: t, pos: map[string]fieldPos{}, noticed: map[string]bool{}}
}

// full reports whether enough problems were found to stop looking: a
// hostile document with 100,000 unknown keys must not cost 100,000
// suggestions.
func (d *decoder) full() bool { return len(d.errs) > maxProblems }

func (d *decoder) fail(n *yaml.Node, field, format string, args ...any) {
	if !d.full() {
		d.errs = append(d.errs, d.t.problemAt(n, field, format, args...))
	}
}

func (d *decoder) notice(n *yaml.Node, field, format string, args ...any) {
	if d.noticed[field] {
		return
	}
	d.noticed[field] = true
	p := d.t.problemAt(n, field, format, args...)
	d.notices = append(d.notices, Notice{File: p.File, Line: p.Line, Set: p.Set, Field: field, Message: p.Message})
}

// record remembers the position of a field for later (validation) problems.
func (d *decoder) record(path string, k, v *yaml.Node) {
	at := k
	if v.Kind == yaml.ScalarNode {
		at = v
	}
	fp := fieldPos{line: at.Line, col: at.Column}
	if set, ok := d.t.origin[at]; ok {
		fp = fieldPos{set: set}
	} else if set, ok := d.t.origin[v]; ok {
		fp = fieldPos{set: set}
	}
	d.pos[path] = fp
}

type fieldOpts struct {
	name      string
	index     int
	ignored   bool
	lowerKeys bool
	unit      string
}

type structInfo struct {
	fields []fieldOpts
	byName map[string]int
	names  []string
}

var structCache sync.Map // reflect.Type → *structInfo

func infoOf(t reflect.Type) *structInfo {
	if v, ok := structCache.Load(t); ok {
		return v.(*structInfo)
	}
	si := &structInfo{byName: map[string]int{}}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		o := fieldOpts{name: name, index: i}
		for _, opt := range strings.Split(f.Tag.Get("spec"), ",") {
			switch {
			case opt == "ignored":
				o.ignored = true
			case opt == "lowerkeys":
				o.lowerKeys = true
			case strings.HasPrefix(opt, "unit="):
				o.unit = strings.TrimPrefix(opt, "unit=")
			}
		}
		si.byName[name] = len(si.fields)
		si.fields = append(si.fields, o)
		si.names = append(si.names, name)
	}
	structCache.Store(t, si)
	return si
}

// decodeStruct decodes a mapping into the struct v (addressable).
func (d *decoder) decodeStruct(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping of fields, got %s", describe(n))
		return
	}
	si := infoOf(v.Type())
	var readOnly []string
	if ro, ok := v.Addr().Interface().(readOnlyFielder); ok {
		readOnly = ro.readOnlyFields()
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if d.full() {
			return
		}
		k, val := n.Content[i], n.Content[i+1]
		fp := joinPath(path, k.Value)
		idx, ok := si.byName[k.Value]
		if !ok {
			if contains(readOnly, k.Value) {
				d.record(fp, k, val)
				d.notice(k, fp, "%s is a read-only field (set by the server, shown by show) and is ignored", fp)
				continue
			}
			d.unknown(v, si, k, fp)
			continue
		}
		f := si.fields[idx]
		d.record(fp, k, val)
		if f.ignored && val.ShortTag() != "!!null" {
			d.notice(k, fp, "%s is accepted for Azure compatibility and ignored by plumbline", fp)
		}
		d.value(fp, val, v.Field(f.index), f)
	}
}

func (d *decoder) unknown(v reflect.Value, si *structInfo, k *yaml.Node, fp string) {
	if h, ok := v.Addr().Interface().(fieldHinter); ok {
		if msg := h.unknownFieldHint(k.Value); msg != "" {
			d.fail(k, fp, "%s", msg)
			return
		}
	}
	switch near := nearest(k.Value, si.names); {
	case len(si.names) == 0:
		d.fail(k, fp, "unknown field; this block is reserved for plumbline and takes no fields yet")
	case near != "":
		d.fail(k, fp, "unknown field; did you mean %s?", near)
	case len(si.names) <= 8:
		d.fail(k, fp, "unknown field; expected one of %s", strings.Join(si.names, ", "))
	default:
		d.fail(k, fp, "unknown field")
	}
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// value decodes n into v. A null leaves v at its zero value: "not set".
func (d *decoder) value(path string, n *yaml.Node, v reflect.Value, o fieldOpts) {
	if isNull(n) {
		v.Set(reflect.Zero(v.Type()))
		return
	}
	if v.CanAddr() {
		if u, ok := v.Addr().Interface().(nodeUnmarshaler); ok {
			u.unmarshalNode(d, path, n)
			return
		}
	}
	switch v.Kind() {
	case reflect.Pointer:
		nv := reflect.New(v.Type().Elem())
		d.value(path, n, nv.Elem(), o)
		v.Set(nv)
	case reflect.Struct:
		d.decodeStruct(path, n, v)
	case reflect.String:
		if s, ok := d.text(path, n, "a string"); ok {
			v.SetString(s)
		}
	case reflect.Int:
		if i, ok := d.integer(path, n, o.unit); ok {
			v.SetInt(int64(i))
		}
	case reflect.Bool:
		if b, ok := d.boolean(path, n); ok {
			v.SetBool(b)
		}
	case reflect.Float64:
		if f, ok := d.float(path, n); ok {
			v.SetFloat(f)
		}
	case reflect.Map:
		d.decodeMap(path, n, v, o)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n, path, "expected a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, e := range n.Content {
			ep := joinPath(path, strconv.Itoa(i))
			d.record(ep, e, e)
			d.value(ep, e, s.Index(i), fieldOpts{})
		}
		v.Set(s)
	case reflect.Interface:
		if g := d.generic(n); g != nil {
			v.Set(reflect.ValueOf(g))
		}
	default:
		d.fail(n, path, "internal error: cannot decode into %s", v.Type())
	}
}

func (d *decoder) decodeMap(path string, n *yaml.Node, v reflect.Value, o fieldOpts) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping (key: value), got %s", describe(n))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	firstLine := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if d.full() {
			break
		}
		k, val := n.Content[i], n.Content[i+1]
		key := k.Value
		if o.lowerKeys {
			key = strings.ToLower(key)
			if line, dup := firstLine[key]; dup {
				d.fail(k, joinPath(path, k.Value), "names are case-insensitive and %s is already set at line %d", key, line)
				continue
			}
			firstLine[key] = k.Line
		}
		fp := joinPath(path, key)
		d.record(fp, k, val)
		ev := reflect.New(v.Type().Elem()).Elem()
		d.value(fp, val, ev, fieldOpts{unit: o.unit})
		m.SetMapIndex(reflect.ValueOf(key), ev)
	}
	v.Set(m)
}

// text accepts any scalar as its literal text: `version: 1` is "1" and an
// environment variable `WORKERS: 4` is "4", as the YAML author wrote them.
func (d *decoder) text(path string, n *yaml.Node, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, "expected %s, got %s", want, describe(n))
		return "", false
	}
	return n.Value, true
}

var intStringRE = regexp.MustCompile(`^[-+]?[0-9]+$`)

// integer accepts YAML integers, and strings of digits ("5000"), which
// Azure's schema library also accepts.
func (d *decoder) integer(path string, n *yaml.Node, unit string) (int, bool) {
	want := "an integer"
	if unit != "" {
		want += " (" + unit + ")"
	}
	if n.Kind == yaml.ScalarNode {
		tag := n.ShortTag()
		if tag == "!!int" || (tag == "!!str" && intStringRE.MatchString(n.Value)) {
			var i int64
			var err error
			if tag == "!!int" {
				err = n.Decode(&i)
			} else {
				i, err = strconv.ParseInt(n.Value, 10, 64)
			}
			if err != nil || i > 1<<31-1 || i < -(1<<31) {
				d.fail(n, path, "expected %s, got %s, which is out of range", want, describe(n))
				return 0, false
			}
			return int(i), true
		}
	}
	d.fail(n, path, "expected %s, got %s", want, describe(n))
	return 0, false
}

func (d *decoder) boolean(path string, n *yaml.Node) (bool, bool) {
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!bool", "!!str":
			switch strings.ToLower(n.Value) {
			case "true":
				return true, true
			case "false":
				return false, true
			}
		}
	}
	d.fail(n, path, "expected a boolean (true or false), got %s", describe(n))
	return false, false
}

func (d *decoder) float(path string, n *yaml.Node) (float64, bool) {
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!int", "!!float":
			var f float64
			if err := n.Decode(&f); err == nil {
				return f, true
			}
		case "!!str":
			if f, err := strconv.ParseFloat(n.Value, 64); err == nil {
				return f, true
			}
		}
	}
	d.fail(n, path, "expected a number, got %s", describe(n))
	return 0, false
}

// generic converts a node to plain Go values (map[string]any, []any, string,
// int64, float64, bool, nil), for free-form fields such as flavors.
func (d *decoder) generic(n *yaml.Node) any {
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			m[n.Content[i].Value] = d.generic(n.Content[i+1])
		}
		return m
	case yaml.SequenceNode:
		s := make([]any, len(n.Content))
		for i, e := range n.Content {
			s[i] = d.generic(e)
		}
		return s
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil
		case "!!int":
			var i int64
			if err := n.Decode(&i); err == nil {
				return i
			}
		case "!!float":
			var f float64
			if err := n.Decode(&f); err == nil {
				return f
			}
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err == nil {
				return b
			}
		}
		return n.Value
	}
	return nil
}

// genericMap decodes a mapping into a map[string]any, or reports a type
// error.
func (d *decoder) genericMap(path string, n *yaml.Node) (map[string]any, bool) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping (key: value), got %s", describe(n))
		return nil, false
	}
	d.recordTree(path, n)
	m, _ := d.generic(n).(map[string]any)
	return m, true
}

// recordTree records the positions of every key under a free-form mapping,
// so that problems found later inside it can be located.
func (d *decoder) recordTree(path string, n *yaml.Node) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			fp := joinPath(path, n.Content[i].Value)
			d.record(fp, n.Content[i], n.Content[i+1])
			d.recordTree(fp, n.Content[i+1])
		}
	case yaml.SequenceNode:
		for i, e := range n.Content {
			fp := joinPath(path, strconv.Itoa(i))
			d.record(fp, e, e)
			d.recordTree(fp, e)
		}
	}
}

// unexpected reports a node of the wrong shape for a union-typed field.
func (d *decoder) unexpected(path string, n *yaml.Node, want string) {
	d.fail(n, path, "expected %s, got %s", want, describe(n))
}
