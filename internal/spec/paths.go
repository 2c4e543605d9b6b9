package spec

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
)

// PathRef is one local path in a parsed document: a model's path, a code
// folder, a build context or a conda file. The CLI uploads each one and
// calls Set with "sha256:<digest>".
type PathRef struct {
	// Field is the dotted field path (model.path, code_configuration.code).
	Field string
	// Path is the current value: absolute once Parse has resolved it
	// against the file's folder, else as written.
	Path string
	set  func(string)
}

// Set replaces the path in the document it came from.
func (p PathRef) Set(value string) {
	if p.set != nil {
		p.set(value)
	}
}

var schemeRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]+:`)

// IsLocalPath reports whether s is a path on this machine, as opposed to a
// value with a scheme (azureml:, azureml://, https://, http://, runs:/,
// wasbs://, abfss://, sha256:, …). "" is not a path.
func IsLocalPath(s string) bool {
	return s != "" && !schemeRE.MatchString(s)
}

// localPath returns a PathRef for *p when it holds a local path.
func localPath(field string, p *string) []PathRef {
	if p == nil || !IsLocalPath(*p) {
		return nil
	}
	return []PathRef{{Field: field, Path: *p, set: func(v string) { *p = v }}}
}

// resolvePaths makes relative local paths absolute against baseDir and
// returns a warning for each one that does not exist.
func resolvePaths(refs []PathRef, baseDir string) []Notice {
	var warns []Notice
	for _, r := range refs {
		p := r.Path
		if !filepath.IsAbs(p) {
			p = filepath.Join(baseDir, p)
			r.Set(p)
		}
		if _, err := os.Stat(p); err != nil {
			warns = append(warns, Notice{Field: r.Field, Message: r.Field + ": local path " + p + " does not exist"})
		}
	}
	return warns
}

// inlineSampleRequest replaces a plumbline.sample_request file path
// (relative to baseDir) with the JSON the file holds, so that the document
// sent to the server carries the request itself.
func (d *Deployment) inlineSampleRequest(baseDir string) error {
	x := d.Plumbline
	if x == nil {
		return nil
	}
	name, ok := x.SampleRequest.(string)
	if !ok {
		return nil
	}
	p := name
	if !filepath.IsAbs(p) {
		p = filepath.Join(baseDir, p)
	}
	v, err := ReadSampleRequest(p)
	if err != nil {
		return fmt.Errorf("plumbline.sample_request: %w", err)
	}
	x.SampleRequest = v
	return nil
}

// ReadSampleRequest reads a JSON request body from a file for
// plumbline.sample_request: a JSON object or list of at most
// MaxSampleRequestBytes.
func ReadSampleRequest(path string) (any, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > MaxSampleRequestBytes {
		return nil, fmt.Errorf("%s is %d bytes; keep a sample request under %d bytes", path, fi.Size(), MaxSampleRequestBytes)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%s is not JSON: %v", path, err)
	}
	switch v.(type) {
	case map[string]any, []any:
		return v, nil
	}
	return nil, fmt.Errorf("%s holds a JSON %T; a sample request is a JSON object or list", path, v)
}
