package cli

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/internal/spec"
)

//go:embed all:templates
var templates embed.FS

func newInitCmd(g *globals) *cobra.Command {
	var name string
	c := &cobra.Command{
		Use:   "init r DIR",
		Short: "Scaffold an R model folder in the seed's layout, or add what an existing one lacks",
		Long: `Create DIR with the layout of Azure's "deploy an R model" article: docker-context/
(Dockerfile, start_plumber.R), src/plumber.R, train.R (writes models/crate.bin),
endpoint.yml, deployment.yml and sample_request.json. Then:

  cd DIR && Rscript train.R && plumbline up .

DIR may exist already: init then adds only the files it lacks and never changes one that is
there. A folder that already has its model or scoring script (models/, src/plumber.R or
plumber.R) keeps them: the example model (train.R, src/plumber.R, sample_request.json) is not
added, and deployment.yml points at the plumber.R it found.`,
		Example: "  plumbline init r my-model\n  plumbline init r .      # an existing folder with plumber.R and models/",
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) != 2 || args[0] != "r" {
				return usageErrorf("usage: plumbline init r DIR (r is the only template)")
			}
			dir := args[1]
			if name == "" {
				abs, err := filepath.Abs(dir)
				if err != nil {
					return err
				}
				name = sanitizeName(filepath.Base(abs))
			}
			if err := spec.ValidateName("endpoint", name); err != nil {
				return usageErrorf("endpoint name %q (from the folder name; choose one with --name): %v", name, err)
			}
			if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
				return fmt.Errorf("%s is a file; give a folder", dir)
			}
			added, kept, notes, err := scaffoldR(dir, name)
			if err != nil {
				return err
			}
			if len(kept) == 0 {
				fmt.Fprintf(g.stderr, "Created %s for endpoint %s. Next:\n  cd %s && Rscript train.R && plumbline up .\n", dir, name, dir)
				return nil
			}
			fmt.Fprintf(g.stderr, "%s exists: kept %s\n", dir, strings.Join(kept, ", "))
			if len(added) > 0 {
				fmt.Fprintf(g.stderr, "Added %s\n", strings.Join(added, ", "))
			} else {
				fmt.Fprintf(g.stderr, "Nothing to add: the folder has every file of the layout\n")
			}
			for _, n := range notes {
				fmt.Fprintf(g.stderr, "Note: %s\n", n)
			}
			fmt.Fprintf(g.stderr, "Next: plumbline up %s\n", dir)
			return nil
		},
	}
	c.Flags().StringVar(&name, "name", "", "endpoint name (default: from the folder name)")
	return c
}

// exampleModelFiles are the template's example model: they only make sense
// together, so they are added to a folder that has no model or scoring
// script of its own, and not at all otherwise.
var exampleModelFiles = map[string]bool{"train.R": true, "src/plumber.R": true, "sample_request.json": true}

// scaffoldR writes the R template into dir, file by file, skipping every
// file that exists. It returns the files added and kept (slash paths) and
// notes for the user.
func scaffoldR(dir, name string) (added, kept, notes []string, err error) {
	exists := func(rel string) bool {
		_, err := os.Stat(filepath.Join(dir, filepath.FromSlash(rel)))
		return err == nil
	}
	code := "./src"
	ownModel := false
	switch {
	case exists("src/plumber.R"):
		ownModel = true
	case exists("plumber.R"):
		ownModel, code = true, "."
		notes = append(notes, "deployment.yml uses ./plumber.R, with this whole folder as the code snapshot; move it to src/ to upload less")
	}
	if entries, err := os.ReadDir(filepath.Join(dir, "models")); err == nil && len(entries) > 0 {
		ownModel = true
	}
	if ownModel {
		notes = append(notes, "the folder has its own model or scoring script, so the example model (train.R, src/plumber.R, sample_request.json) was not added; write sample_request.json with a request your model answers, and plumbline up uses it as the sample request that must pass before traffic")
	}
	srcExisted := exists("src")
	err = fs.WalkDir(templates, "templates/r", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, "templates/r"), "/")
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if exists(rel) {
			kept = append(kept, rel)
			return nil
		}
		if ownModel && exampleModelFiles[rel] {
			return nil
		}
		b, err := templates.ReadFile(p)
		if err != nil {
			return err
		}
		text := strings.NewReplacer("{{NAME}}", name, "{{CODE}}", code).Replace(string(b))
		// O_EXCL: never replace a file that appeared meanwhile.
		f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		if _, err := f.WriteString(text); err != nil {
			f.Close()
			return err
		}
		added = append(added, rel)
		return f.Close()
	})
	if !srcExisted {
		_ = os.Remove(filepath.Join(dir, "src")) // made by the walk; removed only if left empty
	}
	return added, kept, notes, err
}

var nonName = regexp.MustCompile(`[^a-zA-Z0-9-]+`)

// sanitizeName turns a folder name into an endpoint name.
func sanitizeName(s string) string {
	s = strings.Trim(nonName.ReplaceAllString(s, "-"), "-")
	s = strings.TrimLeft(s, "0123456789-")
	if len(s) > 32 {
		s = strings.TrimRight(s[:32], "-")
	}
	if len(s) < 3 {
		s = "r-endpoint"
	}
	return strings.ToLower(s)
}
