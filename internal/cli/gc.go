package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/api"
)

var gcColumns = []column{
	field("KIND", "kind"),
	{header: "DIGEST", cell: func(r map[string]any) string { return shortDigest(cellString(r["digest"])) }},
	{header: "SIZE", cell: func(r map[string]any) string {
		n, _ := r["size"].(float64)
		return humanBytes(int64(n))
	}},
	field("LAST USED", "mod_time"),
	field("PATH", "path"),
}

func newGCCmd(g *globals) *cobra.Command {
	var dryRun bool
	var minAge string
	c := &cobra.Command{
		Use:   "gc",
		Short: "Remove blobs and cache trees that no model version, endpoint or deployment uses",
		Long: `gc removes from the server's registry what nothing references: blobs that are neither an
artifact a model version (archived ones count), endpoint or deployment uses nor a file of one —
uploads that were refused half-way, artifacts never registered, versions of deployments since
deleted — the cache trees built from them, and leftovers of interrupted writes.

Only what has not been used for --min-age (default 1h) goes, so an upload whose model is not
registered yet keeps its blobs. --dry-run lists what would go and removes nothing.`,
	}
	c.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be removed; remove nothing")
	c.Flags().StringVar(&minAge, "min-age", "", "remove only what has not been used for this long (default 1h; 0s: everything unreferenced)")
	v := &verb{cols: gcColumns}
	v.call = func(ctx context.Context, cn *conn) (any, error) {
		rep, err := cn.api.GC(ctx, api.GCRequest{DryRun: dryRun, MinAge: minAge})
		if err != nil {
			return nil, err
		}
		verb := "Removed"
		if rep.DryRun {
			verb = "Would remove"
		}
		fmt.Fprintf(g.stderr, "%s %d item(s), %s; kept %d referenced blob(s) and %d unreferenced one(s) younger than %s.\n",
			verb, len(rep.Items), humanBytes(rep.Bytes), rep.Referenced, rep.Young, rep.MinAge)
		if f, _ := resolveFormat(g.output, g.stdout); f == formatTable && g.query == "" {
			return rep.Items, nil
		}
		return rep, nil
	}
	return g.apiVerb(c, v)
}
