package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/api"
)

var compareColumns = []column{
	field("KIND", "kind"), field("LIVE", "live"), field("SHADOW", "shadow"), field("PAIRS", "pairs"),
	{header: "AGREEMENT", cell: func(r map[string]any) string { f, _ := r["agreement"].(float64); return pctText(f) }},
	field("PREDICTIONS", "predictions"), field("|Δ| P99", "delta_p99"),
	field("LIVE P99 MS", "live_p99_ms"), field("SHADOW P99 MS", "shadow_p99_ms"),
	field("LIVE ERRORS", "live_errors"), field("SHADOW ERRORS", "shadow_errors"),
}

func newEndpointCompare(g *globals) *cobra.Command {
	var name string
	var diffs int
	var all bool
	c := &cobra.Command{
		Use:   "compare",
		Short: "Compare the live deployment's answers with the mirror target's (and replays): agreement, numeric deltas, class flips, latency, errors",
		Long: `Show how a mirrored deployment's answers compare with the live ones, added up over every
gateway since the endpoint's mirror was last set: the share of predictions that agree, the
distribution of numeric differences |Δ|, the class-flip matrix of categorical predictions,
both sides' latency and errors, and a few sampled disagreements (redacted with the
deployments' capture rules). Replays (online-deployment capture replay) show as kind replay.
The endpoint's plumbline.compare block sets the field path and the tolerance.`,
		Example: `  plumbline online-endpoint compare --name my-endpoint
  plumbline online-endpoint compare --name my-endpoint -o json --query "comparisons[0].agreement"`,
	}
	c.Flags().StringVarP(&name, "name", "n", "", "endpoint name")
	c.Flags().IntVar(&diffs, "diffs", 3, "sampled disagreements to show (at most 50)")
	c.Flags().BoolVar(&all, "all", false, "add up every traffic epoch, not only those since the mirror was last set")
	return g.apiVerb(c, &verb{
		required: []string{"name"},
		call: func(ctx context.Context, cn *conn) (any, error) {
			return cn.api.Compare(ctx, name, diffs, all)
		},
		cols: compareColumns,
		text: func(w io.Writer, v any) error { return writeCompareText(w, v.(*api.Comparison)) },
	})
}

// writeCompareText is the comparison as a report.
func writeCompareText(w io.Writer, c *api.Comparison) error {
	mirror := formatSplit(c.Mirror)
	since := "since plumbline started measuring"
	if !c.Since.IsZero() {
		since = "since " + c.Since.Format("2006-01-02 15:04:05 MST") + fmt.Sprintf(" (generation %d)", c.Epoch)
	}
	path := c.Path
	if path == "" {
		path = "the whole answer"
	}
	fmt.Fprintf(w, "Endpoint %s, mirror %s, %s\n", c.Endpoint, mirror, since)
	if len(c.Pairs) == 0 {
		fmt.Fprintln(w, "No comparisons yet: mirror traffic to a deployment (online-endpoint update --mirror-traffic \"green=10\"), or replay captured requests (online-deployment capture replay).")
		return nil
	}
	for _, p := range c.Pairs {
		kind := "Mirror"
		if p.Kind == "replay" {
			kind = "Replay"
		}
		fmt.Fprintf(w, "\n%s %s → %s, compared at %s\n", kind, p.Live, p.Shadow, path)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  Pairs compared\t%d (%d agreed in every prediction, %d incomparable)\n", p.Pairs, p.PairsAgreed, p.Incomparable)
		fmt.Fprintf(tw, "  Agreement\t%s (%d of %d predictions)\n", pctText(p.Agreement), p.Agreed, p.Predictions)
		if p.Deltas > 0 {
			fmt.Fprintf(tw, "  |Δ| of numbers\tmean %s, p50 %s, p99 %s, max %s (%d numbers)\n", num(p.DeltaMean), num(p.DeltaP50), num(p.DeltaP99), num(p.DeltaMax), p.Deltas)
		}
		fmt.Fprintf(tw, "  Latency p50/p99\tlive %.1f/%.1f ms, shadow %.1f/%.1f ms\n", p.LiveP50Ms, p.LiveP99Ms, p.ShadowP50Ms, p.ShadowP99Ms)
		fmt.Fprintf(tw, "  Errors\tlive %d of %d (%s), shadow %d of %d (%s)\n", p.LiveErrors, p.LiveRequests, pctText(p.LiveErrorRate), p.ShadowErrors, p.ShadowRequests, pctText(p.ShadowErrorRate))
		if p.ShadowContractViolations > 0 {
			fmt.Fprintf(tw, "  Refused by the shadow's contract\t%d\n", p.ShadowContractViolations)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(p.Classes) > 0 {
			writeFlipMatrix(w, p.Classes)
		}
	}
	if len(c.Diffs) > 0 {
		fmt.Fprintln(w, "\nSampled disagreements (newest first)")
		for _, d := range c.Diffs {
			fmt.Fprintf(w, "  %s  %s  %s → %s: %s\n", d.Time.Format("15:04:05"), d.RequestID, d.Live, d.Shadow, d.Diff)
			fmt.Fprintf(w, "    request: %s\n    live:    %s\n    shadow:  %s\n", clip(string(d.Request)), clip(string(d.LiveAnswer)), clip(string(d.ShadowAnswer)))
		}
	}
	return nil
}

// writeFlipMatrix writes live labels as rows, shadow labels as columns.
func writeFlipMatrix(w io.Writer, classes map[string]map[string]int64) {
	rows := make([]string, 0, len(classes))
	colset := map[string]bool{}
	for l, row := range classes {
		rows = append(rows, l)
		for s := range row {
			colset[s] = true
		}
	}
	sort.Strings(rows)
	cols := make([]string, 0, len(colset))
	for s := range colset {
		cols = append(cols, s)
	}
	sort.Strings(cols)
	fmt.Fprintln(w, "  Classes (rows: live, columns: shadow)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "    \t")
	for _, c := range cols {
		fmt.Fprintf(tw, "%s\t", c)
	}
	fmt.Fprintln(tw)
	for _, l := range rows {
		fmt.Fprintf(tw, "    %s\t", l)
		for _, c := range cols {
			fmt.Fprintf(tw, "%d\t", classes[l][c])
		}
		fmt.Fprintln(tw)
	}
	_ = tw.Flush()
}

func num(v float64) string { return formatNumber(v) }

// clip cuts a body to 160 characters for the report.
func clip(s string) string {
	if r := []rune(s); len(r) > 160 {
		return string(r[:157]) + "..."
	}
	return s
}
