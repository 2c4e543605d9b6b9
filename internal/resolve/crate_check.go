package resolve

import (
	"context"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/plumbline/plumbline/internal/plumber"
)

// maxCratesChecked bounds the crate.bin files read per model version.
const maxCratesChecked = 10

// CheckModel reads the crates (crate.bin files) of the model version with
// digest in a fresh R session and returns a warning for each one that
// will fail when it is called: its function was defined in the global
// environment, or it uses objects it does not capture. Without R, or
// without crates, it returns nothing.
func (c *RChecker) CheckModel(ctx context.Context, digest string) []string {
	if c.Artifacts == nil || digest == "" {
		return nil
	}
	dir, err := c.Artifacts.Materialize(ctx, digest)
	if err != nil {
		return nil
	}
	var files []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || len(files) >= maxCratesChecked {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() && strings.EqualFold(d.Name(), "crate.bin") {
			files = append(files, p)
		}
		return nil
	})
	if len(files) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	found, err := plumber.CheckCrates(ctx, c.Rscript, files, c.Sandbox)
	if err != nil {
		return nil // no R here: the pre-start check says so when it matters
	}
	var out []string
	for _, f := range found {
		name, err := filepath.Rel(dir, f.File)
		if err != nil {
			name = filepath.Base(f.File)
		}
		out = append(out, f.Warning(filepath.ToSlash(name)))
	}
	return out
}
