package driver_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDependenciesPointDown: the drivers, and the plumber package they use,
// know instances, not endpoints' desired state or the data plane. Their
// files (tests included) must not import the packages above them.
func TestDependenciesPointDown(t *testing.T) {
	const module = "github.com/plumbline/plumbline/internal/"
	forbidden := []string{"store", "registry", "gateway", "reconcile", "reconciler", "apiserver"}
	for _, root := range []string{".", "../plumber"} {
		err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.IsDir() && e.Name() == "testdata" {
				return filepath.SkipDir
			}
			if e.IsDir() || !strings.HasSuffix(path, ".go") {
				return nil
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			for _, imp := range f.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				rest, ok := strings.CutPrefix(p, module)
				if !ok {
					continue
				}
				top, _, _ := strings.Cut(rest, "/")
				for _, bad := range forbidden {
					if top == bad {
						t.Errorf("%s imports %s: drivers must not depend on %s", path, p, bad)
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
