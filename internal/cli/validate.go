package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/internal/spec"
)

func newValidateCmd(g *globals) *cobra.Command {
	var files []string
	c := &cobra.Command{
		Use:   "validate -f FILE...",
		Short: "Check endpoint, deployment, model and environment YAML without a server",
		Long: `Check documents against Azure ML's schemas and plumbline's rules, without a server:
unknown or mistyped keys, types, names, traffic sums, mirror limits, probe and request settings.
A referenced local path that does not exist is a warning here (an error at create).`,
		Example: "  plumbline validate -f endpoint.yml -f deployment.yml",
		RunE: func(c *cobra.Command, args []string) error {
			files = append(files, args...)
			if len(files) == 0 {
				return usageErrorf("validate needs at least one file: plumbline validate -f FILE")
			}
			failed := 0
			for _, f := range files {
				if err := validateFile(g.stdout, g.stderr, f); err != nil {
					fmt.Fprintln(g.stderr, err)
					failed++
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d files are not valid", failed, len(files))
			}
			return nil
		},
	}
	c.Flags().StringArrayVarP(&files, "file", "f", nil, "file to check (repeatable)")
	return c
}

// validateFile parses and validates one document and prints what it is.
func validateFile(stdout, stderr io.Writer, file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	doc, err := spec.Parse(file, data, spec.ParseOptions{BaseDir: filepath.Dir(file)})
	if err != nil {
		return err
	}
	if err := doc.Validate(); err != nil {
		return err
	}
	reportNotices(stderr, doc)
	fmt.Fprintf(stdout, "%s: valid %s\n", file, describeDoc(doc))
	return nil
}

// describeDoc names what a document is: "managed deployment blue (endpoint my-endpoint)".
func describeDoc(doc *spec.Document) string {
	switch doc.Kind {
	case spec.KindEndpoint:
		kind := "managed"
		if doc.Endpoint.IsKubernetes() {
			kind = "Kubernetes"
		}
		return fmt.Sprintf("%s endpoint %s (auth_mode %s)", kind, doc.Endpoint.Name, doc.Endpoint.Defaulted().AuthMode)
	case spec.KindDeployment:
		d := doc.Deployment
		kind := "managed"
		if d.IsKubernetes() {
			kind = "Kubernetes"
		}
		ep := d.EndpointName
		if ep == "" {
			ep = "given with --endpoint-name"
		}
		return fmt.Sprintf("%s deployment %s (endpoint %s)", kind, d.Name, ep)
	case spec.KindModel:
		return "model " + doc.Model.Name
	case spec.KindEnvironment:
		if doc.Environment.Name != "" {
			return "environment " + doc.Environment.Name
		}
		return "environment"
	case spec.KindConda:
		return "conda environment file"
	}
	return string(doc.Kind)
}

// reportNotices prints ignored fields and warnings of a parsed document.
func reportNotices(w io.Writer, doc *spec.Document) {
	if doc == nil {
		return
	}
	for _, n := range doc.Notices {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	for _, n := range doc.Warnings {
		fmt.Fprintf(w, "warning: %s\n", n)
	}
}
