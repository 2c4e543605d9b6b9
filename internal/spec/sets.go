package spec

import (
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
	ups := make([]Update, len(sets))
	for i, s := range sets {
		ups[i] = Update{Op: UpdateSet, Args: []string{s}}
	}
	return t.applyUpdates(ups)
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
