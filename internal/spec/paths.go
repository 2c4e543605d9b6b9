package spec

import (
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
