package spec

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ApplySets applies `--set path=value` overrides to a parsed YAML mapping,
// the way `az ml … --set` does: path is dotted (request_settings.max_concurrent_requests_per_instance),
// a numeric segment indexes a list (a.0.b), missing intermediate mappings
// are created, and value is read as a YAML scalar, so instance_count=2 sets
// an integer and auth_mode=key a string; a value starting with { or [ is
// read as a YAML flow mapping or list (tags={team: ml}).
//
// Keys are not checked here: Parse decodes the result strictly, and reports
// an unknown key that came from a set as "--set instance_cont=2: …".
// root may be a document node or its mapping. Problems are returned as
// Errors whose Set names the expression.
func ApplySets(root *yaml.Node, sets []string) error {
	if root != nil && root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	t := &tree{root: root, origin: map[*yaml.Node]string{}}
	return t.applySets(sets)
}

func (t *tree) applySets(sets []string) error {
	var errs Errors
	for _, s := range sets {
		if p, ok := t.applySet(s); !ok {
			errs = append(errs, p)
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

func (t *tree) applySet(expr string) (Problem, bool) {
	fail := func(field, format string, args ...any) (Problem, bool) {
		return Problem{Set: expr, Field: field, Message: fmt.Sprintf(format, args...)}, false
	}
	path, value, ok := strings.Cut(expr, "=")
	path = strings.TrimSpace(path)
	if !ok || path == "" {
		return fail("", "expected path=value, for example instance_count=2")
	}
	segs := strings.Split(path, ".")
	for _, s := range segs {
		if s == "" {
			return fail(path, "empty segment in the path; write a.b.c")
		}
	}
	if t.root == nil || t.root.Kind != yaml.MappingNode {
		return fail(path, "the document is not a mapping; nothing to set")
	}
	val := setValue(value)
	t.mark(val, expr)
	cur := t.root
	for i, seg := range segs {
		last := i == len(segs)-1
		here := strings.Join(segs[:i], ".")
		switch cur.Kind {
		case yaml.MappingNode:
			j := -1
			for k := 0; k+1 < len(cur.Content); k += 2 {
				if cur.Content[k].Value == seg {
					j = k
					break
				}
			}
			if j < 0 {
				key := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: seg}
				t.mark(key, expr)
				next := val
				if !last {
					next = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
					t.mark(next, expr)
				}
				cur.Content = append(cur.Content, key, next)
				cur = next
				continue
			}
			if last {
				cur.Content[j+1] = val
				continue
			}
			if isNull(cur.Content[j+1]) {
				m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
				t.mark(m, expr)
				cur.Content[j+1] = m
			}
			cur = cur.Content[j+1]
		case yaml.SequenceNode:
			idx, err := strconv.Atoi(seg)
			if err != nil || idx < 0 || idx >= len(cur.Content) {
				return fail(path, "%s is a list of %d items; %q is not an index from 0 to %d", here, len(cur.Content), seg, len(cur.Content)-1)
			}
			if last {
				cur.Content[idx] = val
				continue
			}
			cur = cur.Content[idx]
		default:
			return fail(path, "%s is %s, not a mapping or a list; it has no field %s", here, describe(cur), seg)
		}
	}
	return Problem{}, true
}

// setValue reads a --set value as YAML: a scalar keeps YAML's typing (2 is
// an integer, true a boolean, key a string); {…} and […] are flow
// collections; anything that does not parse is a plain string.
func setValue(v string) *yaml.Node {
	str := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(v), &doc); err != nil || len(doc.Content) == 0 {
		return str
	}
	n := doc.Content[0]
	trimmed := strings.TrimSpace(v)
	switch {
	case n.Kind == yaml.ScalarNode && n.Alias == nil && n.Anchor == "":
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: n.ShortTag(), Value: n.Value, Style: n.Style}
	case (n.Kind == yaml.MappingNode && strings.HasPrefix(trimmed, "{")) ||
		(n.Kind == yaml.SequenceNode && strings.HasPrefix(trimmed, "[")):
		x := expander{t: &tree{origin: map[*yaml.Node]string{}}}
		e := x.expand(n, 0, "")
		if len(x.errs) > 0 {
			return str
		}
		return e
	}
	return str
}

// mark records n and everything under it as coming from a --set.
func (t *tree) mark(n *yaml.Node, expr string) {
	t.origin[n] = expr
	for _, c := range n.Content {
		t.mark(c, expr)
	}
}
