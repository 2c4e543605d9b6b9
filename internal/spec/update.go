package spec

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// UpdateOp is one of az's generic update arguments.
type UpdateOp int

const (
	// UpdateSet is --set path=value: set a field (or a list element).
	UpdateSet UpdateOp = iota
	// UpdateAdd is --add path item...: append items to a list; consecutive
	// key=value items make one mapping, other items are read as values.
	UpdateAdd
	// UpdateRemove is --remove path [index]: delete a field, or the index-th
	// element of the list at path.
	UpdateRemove
)

func (o UpdateOp) flag() string {
	switch o {
	case UpdateAdd:
		return "--add"
	case UpdateRemove:
		return "--remove"
	}
	return "--set"
}

// Update is one generic update argument, applied to the document's tree in
// the order given, the way `az ml … update` applies --set, --add and
// --remove:
//
//   - Paths are dotted (request_settings.max_concurrent_requests_per_instance);
//     [N] indexes a list (identity.user_assigned_identities[0].client_id,
//     the older .0. form too) and [key=value] picks the list element whose
//     key has that value.
//   - Values are read as JSON (2 is a number, true a boolean, {"a": 1} a
//     mapping, "x" a string); what is not JSON is read as a YAML scalar or
//     flow collection, and else kept as a string. ForceString keeps every
//     value a string, as --force-string does.
//   - Missing mappings on the way to a --set are created (az stops there);
//     --add creates the list when it is missing.
//
// Keys are not checked here: Parse decodes the result strictly and reports
// an unknown key with the argument it came from.
type Update struct {
	Op UpdateOp
	// Args are the words of the argument: one path=value for UpdateSet; the
	// list's path then the items for UpdateAdd; the path and an optional
	// index for UpdateRemove.
	Args        []string
	ForceString bool
}

// String is the argument as it would be typed: "--add tags a=b".
func (u Update) String() string {
	return u.Op.flag() + " " + strings.Join(u.Args, " ")
}

func (t *tree) applyUpdates(ups []Update) error {
	var errs Errors
	for _, u := range ups {
		var p Problem
		ok := true
		switch u.Op {
		case UpdateSet:
			for _, a := range u.Args {
				if p, ok = t.applySet(a, u.ForceString); !ok {
					break
				}
			}
		case UpdateAdd:
			p, ok = t.applyAdd(u)
		case UpdateRemove:
			p, ok = t.applyRemove(u)
		}
		if !ok {
			errs = append(errs, p)
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// splitSetExpr splits path=value at the first = that is not inside
// [brackets] (so a.b[name=x].c=1 splits before 1).
func splitSetExpr(expr string) (path, value string, ok bool) {
	depth := 0
	for i, c := range expr {
		switch c {
		case '[':
			depth++
		case ']':
			if depth > 0 {
				depth--
			}
		case '=':
			if depth == 0 {
				return expr[:i], expr[i+1:], true
			}
		}
	}
	return expr, "", false
}

// splitPath splits a.b[0].c[name=x] into a, b, [0], c, [name=x]; an empty
// segment (a..b) is reported with ok false.
func splitPath(path string) (segs []string, ok bool) {
	var cur strings.Builder
	depth := 0
	flush := func(allowEmpty bool) bool {
		if cur.Len() == 0 {
			return allowEmpty
		}
		segs = append(segs, cur.String())
		cur.Reset()
		return true
	}
	for i := 0; i < len(path); i++ {
		c := path[i]
		switch {
		case depth == 0 && c == '.':
			if !flush(i > 0 && path[i-1] == ']') {
				return nil, false
			}
		case depth == 0 && c == '[':
			if !flush(true) {
				return nil, false
			}
			depth++
			cur.WriteByte(c)
		case depth > 0 && c == ']':
			depth--
			cur.WriteByte(c)
			if depth == 0 {
				flush(true)
			}
		default:
			if depth > 0 && c == '[' {
				depth++
			}
			cur.WriteByte(c)
		}
	}
	if depth != 0 || !flush(strings.HasSuffix(path, "]")) {
		return nil, false
	}
	return segs, true
}

func bracketed(seg string) (inner string, ok bool) {
	if strings.HasPrefix(seg, "[") && strings.HasSuffix(seg, "]") {
		return seg[1 : len(seg)-1], true
	}
	return "", false
}

// updateValue reads one value of --set or --add.
func updateValue(v string, force bool) *yaml.Node {
	if force {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
	}
	return setValue(v)
}

// step moves from cur to its child named by seg. With create, a missing (or
// null) mapping field becomes an empty mapping. It returns a problem
// message when there is no such child.
func (t *tree) step(cur *yaml.Node, seg, here, origin string, create bool) (*yaml.Node, string) {
	if inner, ok := bracketed(seg); ok {
		if cur.Kind != yaml.SequenceNode {
			return nil, fmt.Sprintf("%s is %s, not a list; %s indexes a list", here, describe(cur), seg)
		}
		if k, v, isFilter := strings.Cut(inner, "="); isFilter {
			want := setValue(v)
			var found *yaml.Node
			for _, e := range cur.Content {
				if e.Kind != yaml.MappingNode {
					continue
				}
				for i := 0; i+1 < len(e.Content); i += 2 {
					if e.Content[i].Value == k && e.Content[i+1].Kind == yaml.ScalarNode && e.Content[i+1].Value == want.Value {
						if found != nil {
							return nil, fmt.Sprintf("%s has more than one element with %s=%s; pick one with [index]", here, k, v)
						}
						found = e
					}
				}
			}
			if found == nil {
				return nil, fmt.Sprintf("%s has no element with %s=%s", here, k, v)
			}
			return found, ""
		}
		return t.index(cur, inner, here)
	}
	switch cur.Kind {
	case yaml.MappingNode:
		for k := 0; k+1 < len(cur.Content); k += 2 {
			if cur.Content[k].Value == seg {
				if create && isNull(cur.Content[k+1]) {
					m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
					t.mark(m, origin)
					cur.Content[k+1] = m
				}
				return cur.Content[k+1], ""
			}
		}
		if !create {
			return nil, fmt.Sprintf("%s has no field %s", orRoot(here), seg)
		}
		key := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: seg}
		m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		t.mark(key, origin)
		t.mark(m, origin)
		cur.Content = append(cur.Content, key, m)
		return m, ""
	case yaml.SequenceNode:
		return t.index(cur, seg, here)
	}
	return nil, fmt.Sprintf("%s is %s, not a mapping or a list; it has no field %s", here, describe(cur), seg)
}

func (t *tree) index(seq *yaml.Node, s, here string) (*yaml.Node, string) {
	i, ok := listIndex(seq, s)
	if !ok {
		return nil, indexProblem(seq, s, here)
	}
	return seq.Content[i], ""
}

func listIndex(seq *yaml.Node, s string) (int, bool) {
	i, err := strconv.Atoi(s)
	return i, err == nil && i >= 0 && i < len(seq.Content)
}

func indexProblem(seq *yaml.Node, s, here string) string {
	return fmt.Sprintf("%s is a list of %d items; %q is not an index from 0 to %d", here, len(seq.Content), s, len(seq.Content)-1)
}

func orRoot(here string) string {
	if here == "" {
		return "the document"
	}
	return here
}

// joinSegs is the dotted path of segs, with brackets attached: a.b[0].c.
func joinSegs(segs []string) string {
	var b strings.Builder
	for i, s := range segs {
		if i > 0 && !strings.HasPrefix(s, "[") {
			b.WriteByte('.')
		}
		b.WriteString(s)
	}
	return b.String()
}

func (t *tree) applySet(expr string, force bool) (Problem, bool) {
	fail := func(field, format string, args ...any) (Problem, bool) {
		return Problem{Set: expr, Field: field, Message: fmt.Sprintf(format, args...)}, false
	}
	path, value, ok := splitSetExpr(expr)
	path = strings.TrimSpace(path)
	if !ok || path == "" {
		return fail("", "expected path=value, for example instance_count=2")
	}
	segs, ok := splitPath(path)
	if !ok {
		return fail(path, "empty segment in the path; write a.b.c")
	}
	if t.root == nil || t.root.Kind != yaml.MappingNode {
		return fail(path, "the document is not a mapping; nothing to set")
	}
	val := updateValue(value, force)
	t.mark(val, expr)
	cur := t.root
	for i, seg := range segs[:len(segs)-1] {
		next, msg := t.step(cur, seg, joinSegs(segs[:i]), expr, true)
		if msg != "" {
			return fail(path, "%s", msg)
		}
		cur = next
	}
	last, here := segs[len(segs)-1], joinSegs(segs[:len(segs)-1])
	inner, isBracket := bracketed(last)
	switch {
	case cur.Kind == yaml.SequenceNode && isBracket && !strings.Contains(inner, "="):
		i, ok := listIndex(cur, inner)
		if !ok {
			return fail(path, "%s", indexProblem(cur, last, here))
		}
		cur.Content[i] = val
	case cur.Kind == yaml.SequenceNode && !isBracket:
		i, ok := listIndex(cur, last)
		if !ok {
			return fail(path, "%s", indexProblem(cur, last, here))
		}
		cur.Content[i] = val
	case cur.Kind == yaml.MappingNode && !isBracket:
		for k := 0; k+1 < len(cur.Content); k += 2 {
			if cur.Content[k].Value == last {
				cur.Content[k+1] = val
				return Problem{}, true
			}
		}
		key := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: last}
		t.mark(key, expr)
		cur.Content = append(cur.Content, key, val)
	case cur.Kind == yaml.MappingNode || cur.Kind == yaml.SequenceNode:
		return fail(path, "%s is %s; %s cannot be set there", orRoot(here), describe(cur), last)
	default:
		return fail(path, "%s is %s, not a mapping or a list; it has no field %s", here, describe(cur), last)
	}
	return Problem{}, true
}

// parentOf walks to the node that holds path's last segment, creating
// missing mappings with create; msg says why it cannot.
func (t *tree) parentOf(path, origin string, create bool) (cur *yaml.Node, segs []string, msg string) {
	segs, ok := splitPath(path)
	if !ok {
		return nil, nil, "empty segment in the path; write a.b.c"
	}
	if t.root == nil || t.root.Kind != yaml.MappingNode {
		return nil, nil, "the document is not a mapping"
	}
	cur = t.root
	for i, seg := range segs[:len(segs)-1] {
		if cur, msg = t.step(cur, seg, joinSegs(segs[:i]), origin, create); msg != "" {
			return nil, nil, msg
		}
	}
	return cur, segs, ""
}

func (t *tree) applyAdd(u Update) (Problem, bool) {
	expr := u.String()
	fail := func(field, format string, args ...any) (Problem, bool) {
		return Problem{Set: expr, Field: field, Message: fmt.Sprintf(format, args...)}, false
	}
	if len(u.Args) < 2 {
		return fail("", "expected a list's path and what to add: --add environment_variables_list KEY=VALUE, --add tags_list '\"x\"'")
	}
	path := u.Args[0]
	cur, segs, msg := t.parentOf(path, expr, true)
	if msg != "" {
		return fail(path, "%s", msg)
	}
	last := segs[len(segs)-1]
	var list *yaml.Node
	if cur.Kind == yaml.MappingNode {
		for k := 0; k+1 < len(cur.Content); k += 2 {
			if cur.Content[k].Value == last {
				if isNull(cur.Content[k+1]) {
					cur.Content[k+1] = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
					t.mark(cur.Content[k+1], expr)
				}
				list = cur.Content[k+1]
			}
		}
		if list == nil {
			key := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: last}
			list = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
			t.mark(key, expr)
			t.mark(list, expr)
			cur.Content = append(cur.Content, key, list)
		}
	} else {
		next, msg := t.step(cur, last, joinSegs(segs[:len(segs)-1]), expr, false)
		if msg != "" {
			return fail(path, "%s", msg)
		}
		list = next
	}
	if list.Kind != yaml.SequenceNode {
		hint := ""
		if list.Kind == yaml.MappingNode {
			hint = fmt.Sprintf("; set a field of it with --set %s.KEY=VALUE", path)
		}
		return fail(path, "%s is %s, not a list%s", path, describe(list), hint)
	}
	var entry *yaml.Node
	for _, a := range u.Args[1:] {
		if k, v, isKV := strings.Cut(a, "="); isKV {
			if entry == nil {
				entry = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			}
			entry.Content = append(entry.Content,
				&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k},
				&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v})
			continue
		}
		if entry != nil {
			t.mark(entry, expr)
			list.Content = append(list.Content, entry)
			entry = nil
		}
		val := updateValue(a, u.ForceString)
		t.mark(val, expr)
		list.Content = append(list.Content, val)
	}
	if entry != nil {
		t.mark(entry, expr)
		list.Content = append(list.Content, entry)
	}
	return Problem{}, true
}

func (t *tree) applyRemove(u Update) (Problem, bool) {
	expr := u.String()
	fail := func(field, format string, args ...any) (Problem, bool) {
		return Problem{Set: expr, Field: field, Message: fmt.Sprintf(format, args...)}, false
	}
	if len(u.Args) < 1 || len(u.Args) > 2 {
		return fail("", "expected a field's path (--remove tags) or a list's path and an index (--remove identity.user_assigned_identities 0)")
	}
	path := u.Args[0]
	cur, segs, msg := t.parentOf(path, expr, false)
	if msg != "" {
		return fail(path, "%s", msg)
	}
	last, here := segs[len(segs)-1], joinSegs(segs[:len(segs)-1])
	if len(u.Args) == 2 {
		list, msg := t.step(cur, last, here, expr, false)
		if msg != "" {
			return fail(path, "%s", msg)
		}
		if list.Kind != yaml.SequenceNode {
			return fail(path, "%s is %s, not a list; remove the field with --remove %s", path, describe(list), path)
		}
		i, ok := listIndex(list, u.Args[1])
		if !ok {
			return fail(path, "%s", indexProblem(list, u.Args[1], path))
		}
		list.Content = append(list.Content[:i], list.Content[i+1:]...)
		return Problem{}, true
	}
	if inner, isBracket := bracketed(last); isBracket && cur.Kind == yaml.SequenceNode {
		i, ok := listIndex(cur, inner)
		if !ok {
			return fail(path, "%s", indexProblem(cur, last, here))
		}
		cur.Content = append(cur.Content[:i], cur.Content[i+1:]...)
		return Problem{}, true
	}
	if cur.Kind != yaml.MappingNode {
		return fail(path, "%s is %s; it has no field %s to remove", orRoot(here), describe(cur), last)
	}
	for k := 0; k+1 < len(cur.Content); k += 2 {
		if cur.Content[k].Value == last {
			cur.Content = append(cur.Content[:k], cur.Content[k+2:]...)
			return Problem{}, true
		}
	}
	return fail(path, "%s has no field %s", orRoot(here), last)
}
