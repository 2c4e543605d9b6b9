// Package redact removes or hashes fields of JSON bodies before they leave
// the gateway's memory: the capture files, the capture HTTP sink and the
// shadow comparison's sampled diffs all see bodies only after Rules.Apply.
// Fields are named with JSONPath (RFC 9535) expressions, so a rule reaches
// a column of a data frame in any orientation ($..ssn, $.data[*].ssn).
//
// It is a leaf: it must not import anything of plumbline's.
package redact

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/theory/jsonpath"
	"github.com/theory/jsonpath/spec"
)

// HashPrefix starts every hashed value.
const HashPrefix = "hmac-sha256:"

// Rules are compiled redaction and hashing rules. A nil *Rules has no rules.
type Rules struct {
	redact []*jsonpath.Path
	hash   []*jsonpath.Path
	key    []byte
}

// Compile compiles the rules: redact removes every value its expressions
// select; hash replaces each by HashPrefix + the hex HMAC-SHA256 of its
// JSON text under key. Both empty gives nil (no rules).
func Compile(redact, hash []string, key []byte) (*Rules, error) {
	if len(redact) == 0 && len(hash) == 0 {
		return nil, nil
	}
	r := &Rules{key: key}
	for _, e := range redact {
		p, err := jsonpath.Parse(e)
		if err != nil {
			return nil, fmt.Errorf("redact %q: %w", e, err)
		}
		r.redact = append(r.redact, p)
	}
	for _, e := range hash {
		p, err := jsonpath.Parse(e)
		if err != nil {
			return nil, fmt.Errorf("hash %q: %w", e, err)
		}
		r.hash = append(r.hash, p)
	}
	if len(r.hash) > 0 && len(key) < 16 {
		return nil, errors.New("hash rules need a key of at least 16 bytes")
	}
	return r, nil
}

// Empty reports whether r has no rules.
func (r *Rules) Empty() bool { return r == nil || len(r.redact)+len(r.hash) == 0 }

// ErrNotJSON: a body the rules cannot be applied to (it is not JSON); it
// must not be written at all.
var ErrNotJSON = errors.New("body is not JSON")

// Apply returns body with the rules applied, re-encoded (object keys
// sorted, numbers as written), and how many values it removed or hashed.
// Without rules it returns body unchanged. A body that is not JSON cannot be
// redacted: ErrNotJSON.
func (r *Rules) Apply(body []byte) (json.RawMessage, int, error) {
	if r.Empty() {
		return body, 0, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, 0, ErrNotJSON
	}
	if dec.More() {
		return nil, 0, ErrNotJSON
	}
	n := 0
	for _, p := range r.hash {
		for _, ln := range p.SelectLocated(doc) {
			raw, err := json.Marshal(ln.Node)
			if err != nil {
				return nil, 0, err
			}
			m := hmac.New(sha256.New, r.key)
			m.Write(raw)
			doc = set(doc, ln.Path, HashPrefix+hex.EncodeToString(m.Sum(nil)), false)
			n++
		}
	}
	for _, p := range r.redact {
		for _, ln := range p.SelectLocated(doc) {
			doc = set(doc, ln.Path, nil, true)
			n++
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, 0, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), n, nil
}

// set replaces the value at path in doc with v, or removes it (an object
// member is deleted; an array element becomes null, so that the rows of a
// data frame keep their positions). It returns the new root.
func set(doc any, path spec.NormalizedPath, v any, remove bool) any {
	if len(path) == 0 {
		return v
	}
	cur := doc
	for i, sel := range path {
		last := i == len(path)-1
		switch s := sel.(type) {
		case spec.Name:
			m, ok := cur.(map[string]any)
			if !ok {
				return doc
			}
			if last {
				if remove {
					delete(m, string(s))
				} else {
					m[string(s)] = v
				}
				return doc
			}
			cur = m[string(s)]
		case spec.Index:
			a, ok := cur.([]any)
			if !ok || int(s) < 0 || int(s) >= len(a) {
				return doc
			}
			if last {
				a[s] = v
				return doc
			}
			cur = a[s]
		default:
			return doc
		}
	}
	return doc
}
