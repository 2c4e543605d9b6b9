package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxDocumentSize is the largest file Parse accepts. Specification files are
// a few kilobytes; the cap keeps a hostile request body from costing much.
const MaxDocumentSize = 1 << 20

// Limits on alias expansion and nesting, so that "billion laughs" documents
// and deep nesting fail with a message instead of eating memory.
const (
	maxNodes = 100_000
	maxDepth = 100
)

// tree is a parsed document: its root mapping, with aliases and merge keys
// expanded, duplicate keys rejected, and --set overrides applied.
type tree struct {
	file string
	root *yaml.Node
	// origin maps nodes created by --set to the set expression, so that
	// problems with them are reported as "--set a.b=c".
	origin map[*yaml.Node]string
}

// problemAt is a Problem located at n.
func (t *tree) problemAt(n *yaml.Node, field, format string, args ...any) Problem {
	p := Problem{File: t.file, Field: field, Message: fmt.Sprintf(format, args...)}
	if n != nil {
		if set, ok := t.origin[n]; ok {
			p.Set = set
		} else {
			p.Line, p.Column = n.Line, n.Column
		}
	}
	return p
}

// parseTree reads exactly one YAML (or JSON) document whose root is a
// mapping.
func parseTree(file string, data []byte) (*tree, error) {
	t := &tree{file: file, origin: map[*yaml.Node]string{}}
	if len(data) > MaxDocumentSize {
		return nil, Errors{{File: file, Message: fmt.Sprintf("the file is %d bytes; the limit is %d bytes (1 MiB)", len(data), MaxDocumentSize)}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Errors{{File: file, Message: "the file is empty; expected a mapping of fields (name: …)"}}
		}
		return nil, Errors{syntaxProblem(file, err)}
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, Errors{syntaxProblem(file, err)}
	default:
		return nil, Errors{{File: file, Line: next.Line, Message: "the file holds more than one YAML document (---); put each endpoint, deployment, model or environment in its own file"}}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, Errors{{File: file, Message: "the file is empty; expected a mapping of fields (name: …)"}}
		}
		root = root.Content[0]
	}
	x := expander{t: t}
	root = x.expand(root, 0, "")
	if len(x.errs) > 0 {
		return nil, x.errs.sorted()
	}
	switch {
	case root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null":
		return nil, Errors{{File: file, Message: "the file is empty; expected a mapping of fields (name: …)"}}
	case root.Kind != yaml.MappingNode:
		return nil, Errors{t.problemAt(root, "", "the top level must be a mapping of fields (name: …), got %s", describe(root))}
	}
	t.root = root
	return t, nil
}

var yamlErrRE = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// parserProblems are the messages libyaml's parser (as opposed to its
// scanner) reports; go-yaml prints their line 0-based, so it is corrected.
var parserProblems = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"found undefined tag handle":             true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected key":              true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found duplicate %TAG directive":         true,
}

// readerProblems are reported without a position.
var readerProblems = []string{"control characters", "invalid leading UTF-8", "incomplete UTF-", "invalid trailing UTF-8",
	"invalid Unicode", "input error", "invalid length of a UTF-8", "surrogate", "unknown anchor", "excessive aliasing", "exceeded max depth"}

// syntaxProblem turns a go-yaml error ("yaml: line 3: mapping values are
// not allowed in this context") into a located Problem. go-yaml reports the
// line only, never the column.
func syntaxProblem(file string, err error) Problem {
	m := yamlErrRE.FindStringSubmatch(err.Error())
	if m == nil {
		return Problem{File: file, Message: "invalid YAML: " + err.Error()}
	}
	msg := m[2]
	line, _ := strconv.Atoi(m[1])
	switch {
	case parserProblems[msg]:
		line++ // 0-based in go-yaml's message, or absent for line 0
	case line == 0:
		line = 1 // scanner errors on the first line are printed without one
		for _, r := range readerProblems {
			if strings.Contains(msg, r) {
				line = 0
				break
			}
		}
	}
	return Problem{File: file, Line: line, Message: "invalid YAML: " + msg}
}

// expander copies a node tree, following aliases, applying merge keys (<<)
// and rejecting duplicate keys, complex keys and unreplaced {{placeholders}}.
type expander struct {
	t      *tree
	errs   Errors
	nodes  int
	active []*yaml.Node // aliases being expanded, to stop cycles
	full   bool         // the node budget was exceeded (reported once)
}

func (x *expander) fail(p Problem) {
	if len(x.errs) <= maxProblems {
		x.errs = append(x.errs, p)
	}
}

func (x *expander) expand(n *yaml.Node, depth int, path string) *yaml.Node {
	x.nodes++
	if x.nodes > maxNodes || depth > maxDepth {
		if !x.full {
			x.full = true
			what := fmt.Sprintf("the document expands to more than %d nodes (aliases?)", maxNodes)
			if depth > maxDepth {
				what = fmt.Sprintf("the document nests deeper than %d levels", maxDepth)
			}
			x.fail(x.t.problemAt(n, "", "%s", what))
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
		}
		return x.expand(n.Content[0], depth, path)
	case yaml.AliasNode:
		if n.Alias == nil {
			x.fail(x.t.problemAt(n, path, "unknown anchor *%s", n.Value))
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
		}
		for _, a := range x.active {
			if a == n.Alias {
				x.fail(x.t.problemAt(n, path, "alias *%s refers to a value that contains it", n.Value))
				return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
			}
		}
		x.active = append(x.active, n.Alias)
		out := x.expand(n.Alias, depth+1, path)
		x.active = x.active[:len(x.active)-1]
		return out
	case yaml.ScalarNode:
		c := *n
		c.Content = nil
		c.Alias = nil
		return &c
	case yaml.SequenceNode:
		c := &yaml.Node{Kind: n.Kind, Tag: n.Tag, Style: n.Style, Line: n.Line, Column: n.Column}
		for i, e := range n.Content {
			c.Content = append(c.Content, x.expand(e, depth+1, joinPath(path, strconv.Itoa(i))))
		}
		return c
	case yaml.MappingNode:
		if name, ok := placeholder(n); ok {
			x.fail(x.t.problemAt(n, path, "{{%s}} is a template placeholder that was not replaced; put a real value here", name))
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
		}
		return x.mapping(n, depth, path)
	}
	x.fail(x.t.problemAt(n, "", "unsupported YAML node"))
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
}

func (x *expander) mapping(n *yaml.Node, depth int, path string) *yaml.Node {
	c := &yaml.Node{Kind: n.Kind, Tag: n.Tag, Style: n.Style, Line: n.Line, Column: n.Column}
	seen := map[string]*yaml.Node{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if k.Kind == yaml.AliasNode && k.Alias != nil && k.Alias.Kind == yaml.ScalarNode {
			k = k.Alias
		}
		if k.Kind != yaml.ScalarNode {
			if name, ok := placeholder(k); ok {
				x.fail(x.t.problemAt(k, path, "{{%s}} is a template placeholder that was not replaced; put a real value here", name))
			} else {
				x.fail(x.t.problemAt(k, path, "a key must be a plain word (name:), got %s", describe(k)))
			}
			continue
		}
		if first, dup := seen[k.Value]; dup {
			x.fail(x.t.problemAt(k, joinPath(path, k.Value), "duplicate key (first set at line %d); keep one", first.Line))
			continue
		}
		kc := *k
		kc.Content, kc.Alias = nil, nil
		seen[k.Value] = &kc
		c.Content = append(c.Content, &kc, x.expand(v, depth+1, joinPath(path, k.Value)))
	}
	// Merged keys come after explicit ones and never override them; among
	// merge sources, the first one that sets a key wins (YAML merge rules).
	for _, m := range merges {
		for _, src := range x.mergeSources(m, depth, path) {
			for i := 0; i+1 < len(src.Content); i += 2 {
				k := src.Content[i]
				if _, dup := seen[k.Value]; dup {
					continue
				}
				seen[k.Value] = k
				c.Content = append(c.Content, k, src.Content[i+1])
			}
		}
	}
	return c
}

// mergeSources expands the value of a << key into the mappings to merge.
func (x *expander) mergeSources(v *yaml.Node, depth int, path string) []*yaml.Node {
	e := x.expand(v, depth+1, path)
	switch e.Kind {
	case yaml.MappingNode:
		return []*yaml.Node{e}
	case yaml.SequenceNode:
		var out []*yaml.Node
		for _, s := range e.Content {
			if s.Kind != yaml.MappingNode {
				x.fail(x.t.problemAt(s, path, "a merge key (<<) takes a mapping or a list of mappings, got %s", describe(s)))
				continue
			}
			out = append(out, s)
		}
		return out
	}
	x.fail(x.t.problemAt(v, path, "a merge key (<<) takes a mapping or a list of mappings, got %s", describe(e)))
	return nil
}

// placeholder recognises {{NAME}} written unquoted, which YAML parses as a
// mapping holding a mapping.
func placeholder(n *yaml.Node) (string, bool) {
	if n.Kind != yaml.MappingNode || n.Style&yaml.FlowStyle == 0 || len(n.Content) != 2 {
		return "", false
	}
	inner, val := n.Content[0], n.Content[1]
	if inner.Kind != yaml.MappingNode || len(inner.Content) != 2 || val.ShortTag() != "!!null" {
		return "", false
	}
	if inner.Content[0].Kind != yaml.ScalarNode || inner.Content[1].ShortTag() != "!!null" {
		return "", false
	}
	return inner.Content[0].Value, true
}

// describe names what a node is, for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "nothing (null)"
		case "!!int", "!!float":
			return "number " + n.Value
		case "!!bool":
			return "boolean " + n.Value
		}
		return "string " + quote(n.Value)
	}
	return "an alias"
}
