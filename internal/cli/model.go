package cli

import (
	"context"
	"strings"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/api"
)

// The model verbs: model_create.go, model_list.go, model_show.go,
// model_download.go, model_archive.go.

var modelColumns = []column{
	field("NAME", "name"), field("VERSION", "version"), field("TYPE", "type"), field("PATH", "path"),
	{header: "SIZE", cell: func(r map[string]any) string {
		if f, ok := r["size"].(float64); ok {
			return humanBytes(int64(f))
		}
		return ""
	}},
	{header: "DIGEST", cell: func(r map[string]any) string { return shortDigest(cellString(r["digest"])) }},
	field("STAGE", "stage"), field("ARCHIVED", "archived"), field("CREATED", "created_at"),
}

func newModelCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "model", Short: "Register, list, show, download and archive models"}
	c.AddCommand(newModelCreate(g), newModelList(g), newModelShow(g), newModelUpdate(g), newModelDownload(g), newModelArchive(g, true), newModelArchive(g, false))
	return c
}

func parseTags(kvs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageErrorf("--tags %q: want key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

// modelRef is the --name, --version and --label flags that pick one model
// version.
type modelRef struct {
	name, version, label string
	v                    string // the version the API takes, once checked
}

// check turns --version / --label into the version the API takes.
func (r *modelRef) check(*cobra.Command) (err error) {
	r.v, err = versionOrLabel(r.version, r.label)
	return err
}

// get fetches the model version.
func (r *modelRef) get(ctx context.Context, cn *conn) (*api.Model, error) {
	return cn.api.GetModel(ctx, r.name, r.v)
}

func addModelRef(c *cobra.Command) *modelRef {
	r := &modelRef{}
	f := c.Flags()
	f.StringVarP(&r.name, "name", "n", "", "model name")
	f.StringVarP(&r.version, "version", "v", "", "version")
	f.StringVarP(&r.label, "label", "l", "", "label: latest")
	return r
}

// versionOrLabel turns --version / --label into the version the API takes.
func versionOrLabel(version, label string) (string, error) {
	switch {
	case version != "" && label != "":
		return "", usageErrorf("give --version or --label, not both")
	case version != "":
		return version, nil
	case label == "latest":
		return "@latest", nil
	case label != "":
		return "", usageErrorf("--label %q: the only label is latest", label)
	}
	return "", usageErrorf("You must specify either version or label (--version N or --label latest)")
}
