package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/api"
)

// online-deployment rollout: a progressive rollout with its status, pause,
// resume, abort, list and history.

var rolloutColumns = []column{
	field("ID", "id"), field("NAME", "name"), field("STATE", "state"),
	{header: "STEP", cell: func(r map[string]any) string {
		steps, _ := r["steps"].([]any)
		i, _ := r["step"].(float64)
		return fmt.Sprintf("%d/%d (%s%s %%)", int(i)+1, len(steps), kindPrefix(cellString(r["step_kind"])), cellString(r["percent"]))
	}},
	field("REASON", "reason"), field("CREATED", "created_at"),
}

func kindPrefix(kind string) string {
	if kind == "shadow" {
		return "shadow "
	}
	return ""
}

var historyColumns = []column{
	field("TIME", "time"), field("ROLLOUT", "rollout_id"),
	{header: "SERVING", cell: func(r map[string]any) string {
		es, _ := r["entries"].([]any)
		var parts []string
		for _, e := range es {
			m, _ := e.(map[string]any)
			s := fmt.Sprintf("%s=%s", cellString(m["deployment"]), cellString(m["traffic"]))
			if mir := cellString(m["mirror"]); mir != "" {
				s += " (mirror " + mir + ")"
			}
			if model := cellString(m["model"]); model != "" {
				s += " " + model
			}
			if d := cellString(m["model_digest"]); len(d) > 19 {
				s += " " + d[:19]
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ", ")
	}},
	field("CAUSE", "cause"),
}

func newDeploymentRollout(g *globals) *cobra.Command {
	var name, endpoint, steps string
	var shadow, bake, minReq int
	var maxErr, maxLat, minAgree, maxViol float64
	var wait bool
	c := &cobra.Command{
		Use:   "rollout",
		Short: "Shift an endpoint's traffic to a deployment in steps, judged by gates, rolled back automatically",
		Long: `Shift an endpoint's live traffic to a deployment in steps (optionally after a shadow step that
mirrors traffic to it and compares its answers with the live ones). Each step lasts at least
--bake-time and needs --min-requests before its gates are judged: the deployment's error rate,
its p99 latency against the live deployments', the shadow step's agreement, and the share of
requests its input contract refuses. A breached gate returns the traffic to where it was at
once (RolledBack, with the gate and the figures); too few requests make the step wait, never
revert. Flags override the deployment's plumbline.rollout block, which overrides the defaults.

The rollout's state lives in the server's store: it carries on after a restart.`,
		Example: `  plumbline online-deployment rollout --name green --endpoint-name my-endpoint --shadow 20 --steps 10,50,100 --wait
  plumbline online-deployment rollout status --name green --endpoint-name my-endpoint
  plumbline online-deployment rollout abort --name green --endpoint-name my-endpoint`,
	}
	f := c.Flags()
	f.StringVarP(&name, "name", "n", "", "deployment to roll out")
	f.StringVarP(&endpoint, "endpoint-name", "e", "", "endpoint name")
	f.StringVar(&steps, "steps", "", "shares of live traffic, increasing, the last 100 (default 10,25,50,100)")
	f.IntVar(&shadow, "shadow", 0, "first mirror this percent of live traffic to the deployment and compare its answers (1-50; default: no shadow step)")
	f.IntVar(&bake, "bake-time", 0, "seconds each step lasts at least (default 60)")
	f.IntVar(&minReq, "min-requests", 0, "requests a step needs before its gates are judged (default 100)")
	f.Float64Var(&maxErr, "max-error-rate", 0, "gate: the deployment's errors (5xx, 424, 408, 429) per request, 0-1 (default 0.01)")
	f.Float64Var(&maxLat, "max-latency-ratio", 0, "gate: its p99 latency over the live deployments' p99; 0 turns it off (default 1.5)")
	f.Float64Var(&minAgree, "min-agreement", 0, "gate of the shadow step: share of predictions agreeing with the live answers, 0-1; 0 turns it off (default 0.95)")
	f.Float64Var(&maxViol, "max-contract-violation-rate", 0, "gate: requests its input contract refuses (422) per request, 0-1 (default 0.01)")
	f.BoolVar(&wait, "wait", false, "follow the rollout, printing each step, until it ends (exit 1 unless it succeeds)")
	g.apiVerb(c, &verb{
		required: []string{"name", "endpoint-name"},
		check: func(c *cobra.Command) error {
			if steps == "" {
				return nil
			}
			for _, s := range strings.Split(steps, ",") {
				if _, err := strconv.Atoi(strings.TrimSpace(s)); err != nil {
					return usageErrorf("--steps %q: want percents separated by commas, e.g. 10,25,50,100", steps)
				}
			}
			return nil
		},
		call: func(ctx context.Context, cn *conn) (any, error) {
			var req api.RolloutRequest
			if steps != "" {
				for _, s := range strings.Split(steps, ",") {
					n, _ := strconv.Atoi(strings.TrimSpace(s))
					req.Steps = append(req.Steps, n)
				}
			}
			fl := c.Flags()
			if fl.Changed("shadow") {
				req.ShadowPercent = &shadow
			}
			if fl.Changed("bake-time") {
				req.BakeTime = &bake
			}
			if fl.Changed("min-requests") {
				req.MinRequests = &minReq
			}
			for _, x := range []struct {
				flag string
				v    *float64
				dst  **float64
			}{{"max-error-rate", &maxErr, &req.MaxErrorRate}, {"max-latency-ratio", &maxLat, &req.MaxLatencyRatio},
				{"min-agreement", &minAgree, &req.MinAgreement}, {"max-contract-violation-rate", &maxViol, &req.MaxContractViolationRate}} {
				if fl.Changed(x.flag) {
					*x.dst = x.v
				}
			}
			r, err := cn.api.StartRollout(ctx, endpoint, name, req)
			if err != nil {
				return nil, err
			}
			fmt.Fprintf(g.stderr, "Rollout %d of %s started: %s\n", r.ID, name, stepsText(r))
			if !wait {
				return r, nil
			}
			return cn.followRollout(ctx, g, endpoint, name, r)
		},
		cols: rolloutColumns,
		text: func(w io.Writer, v any) error { return writeRolloutText(w, v.(*api.Rollout)) },
	})
	c.AddCommand(newRolloutStatus(g), newRolloutAction(g, "pause", "Pause a running rollout: traffic stays as it is and no gate is judged"),
		newRolloutAction(g, "resume", "Resume a paused rollout (the current step's bake time starts again)"),
		newRolloutAction(g, "abort", "Abort a rollout: traffic returns to where it was when it started"),
		newRolloutList(g), newRolloutHistory(g))
	return c
}

// followRollout prints the rollout's events until it ends; it fails
// unless the rollout succeeded.
func (cn *conn) followRollout(ctx context.Context, g *globals, endpoint, name string, r *api.Rollout) (*api.Rollout, error) {
	start := time.Now()
	var after int64
	if evs, err := cn.api.Events(ctx, api.EventFilter{Endpoint: endpoint, Deployment: name, Limit: 1}); err == nil && len(evs) > 0 {
		after = evs[len(evs)-1].ID - 1 // the RolloutStarted event
	}
	lastWait := ""
	for {
		evs, err := cn.api.Events(ctx, api.EventFilter{Endpoint: endpoint, Deployment: name, AfterID: after})
		if err == nil {
			for _, e := range evs {
				after = e.ID
				if strings.HasPrefix(e.Reason, "Rollout") {
					fmt.Fprintf(g.stderr, "[%6.1fs] %-18s %s\n", time.Since(start).Seconds(), e.Reason, e.Message)
				}
			}
		}
		cur, err := cn.api.GetRollout(ctx, endpoint, name)
		if err != nil {
			return nil, err
		}
		if cur.State != "Running" && cur.State != "Paused" {
			if cur.State != "Succeeded" {
				_ = writeRolloutText(g.stdout, cur)
				return nil, fmt.Errorf("rollout %d of %s %s: %s", cur.ID, name, cur.State, cur.Reason)
			}
			return cur, nil
		}
		if f := cur.Figures; f != nil && f.Waiting != lastWait {
			lastWait = f.Waiting
			if f.Waiting != "" {
				fmt.Fprintf(g.stderr, "[%6.1fs] %-18s step %d: %s\n", time.Since(start).Seconds(), "waiting", cur.Step+1, f.Waiting)
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func stepsText(r *api.Rollout) string {
	var parts []string
	for _, s := range r.Steps {
		parts = append(parts, kindPrefix(s.Kind)+strconv.Itoa(s.Percent)+" %")
	}
	return fmt.Sprintf("%s; each step %d s and %d requests at least", strings.Join(parts, " → "), r.BakeTimeSeconds, r.MinRequests)
}

// writeRolloutText is a rollout as a report: plan, state, figures, gates,
// history.
func writeRolloutText(w io.Writer, r *api.Rollout) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Rollout\t%d of %s (endpoint %s)\n", r.ID, r.Deployment, r.Endpoint)
	fmt.Fprintf(tw, "State\t%s\n", r.State)
	if r.Reason != "" {
		fmt.Fprintf(tw, "Reason\t%s\n", r.Reason)
	}
	fmt.Fprintf(tw, "Plan\t%s\n", stepsText(r))
	if r.State == "Running" || r.State == "Paused" {
		fmt.Fprintf(tw, "Step\t%d of %d: %s%d %%, since %s\n", r.Step+1, len(r.Steps), kindPrefix(r.StepKind), r.Percent, r.StepStartedAt.Format(time.RFC3339))
	}
	gt := r.Gates
	gates := fmt.Sprintf("error rate ≤ %s, contract violations ≤ %s", pctText(gt.MaxErrorRate), pctText(gt.MaxContractViolationRate))
	if gt.MaxLatencyRatio > 0 {
		gates += fmt.Sprintf(", p99 ≤ %.2f× the live deployments'", gt.MaxLatencyRatio)
	}
	if gt.MinAgreement > 0 && len(r.Steps) > 0 && r.Steps[0].Kind == "shadow" {
		gates += fmt.Sprintf(", shadow agreement ≥ %s", pctText(gt.MinAgreement))
	}
	fmt.Fprintf(tw, "Gates\t%s\n", gates)
	fmt.Fprintf(tw, "Started from\t%s\n", formatSplit(r.Baseline))
	if f := r.Figures; f != nil {
		line := fmt.Sprintf("%d requests, %d errors (%s), %d contract violations", f.Requests, f.Errors, pctText(f.ErrorRate), f.ContractViolations)
		if f.P99Ms != nil {
			line += fmt.Sprintf(", p99 %.1f ms", *f.P99Ms)
			if f.LatencyRatio != nil {
				line += fmt.Sprintf(" (%.2f× %.1f ms)", *f.LatencyRatio, *f.BaselineP99Ms)
			}
		}
		if f.Agreement != nil {
			line += fmt.Sprintf(", agreement %s of %d predictions", pctText(*f.Agreement), f.Predictions)
		}
		fmt.Fprintf(tw, "This step\t%s\n", line)
		if f.Waiting != "" {
			fmt.Fprintf(tw, "Waiting for\t%s\n", f.Waiting)
		}
		if f.Breach != "" {
			fmt.Fprintf(tw, "Breach\t%s\n", f.Breach)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.History) > 0 {
		fmt.Fprintln(w, "\nHistory")
		rows := make([]any, len(r.History))
		for i, h := range r.History {
			rows[i] = h
		}
		generic, err := toGeneric(rows)
		if err != nil {
			return err
		}
		return writeTable(w, generic, historyColumns)
	}
	return nil
}

func formatSplit(m map[string]int) string {
	var parts []string
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

// pctText is a share as a percentage: 0.0123 → "1.23 %".
func pctText(v float64) string {
	s := strconv.FormatFloat(v*100, 'f', 2, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s + " %"
}

func newRolloutStatus(g *globals) *cobra.Command {
	var name, endpoint string
	c := &cobra.Command{Use: "status", Short: "Show a deployment's newest rollout: state, step, figures against the gates, history"}
	c.Flags().StringVarP(&name, "name", "n", "", "deployment name")
	c.Flags().StringVarP(&endpoint, "endpoint-name", "e", "", "endpoint name")
	return g.apiVerb(c, &verb{
		required: []string{"name", "endpoint-name"},
		call: func(ctx context.Context, cn *conn) (any, error) {
			return cn.api.GetRollout(ctx, endpoint, name)
		},
		cols: rolloutColumns,
		text: func(w io.Writer, v any) error { return writeRolloutText(w, v.(*api.Rollout)) },
	})
}

func newRolloutAction(g *globals, action, short string) *cobra.Command {
	var name, endpoint string
	c := &cobra.Command{Use: action, Short: short}
	c.Flags().StringVarP(&name, "name", "n", "", "deployment name")
	c.Flags().StringVarP(&endpoint, "endpoint-name", "e", "", "endpoint name")
	return g.apiVerb(c, &verb{
		required: []string{"name", "endpoint-name"},
		call: func(ctx context.Context, cn *conn) (any, error) {
			r, err := cn.api.RolloutAction(ctx, endpoint, name, action)
			if err != nil {
				return nil, err
			}
			fmt.Fprintf(g.stderr, "Rollout %d of %s: %s\n", r.ID, name, r.State)
			return r, nil
		},
		cols: rolloutColumns,
		text: func(w io.Writer, v any) error { return writeRolloutText(w, v.(*api.Rollout)) },
	})
}

func newRolloutList(g *globals) *cobra.Command {
	var endpoint string
	c := &cobra.Command{Use: "list", Short: "List an endpoint's rollouts, oldest first"}
	c.Flags().StringVarP(&endpoint, "endpoint-name", "e", "", "endpoint name")
	return g.apiVerb(c, &verb{
		required: []string{"endpoint-name"},
		call: func(ctx context.Context, cn *conn) (any, error) {
			rs, err := cn.api.ListRollouts(ctx, endpoint)
			if rs == nil {
				rs = []api.Rollout{}
			}
			return rs, err
		},
		cols: rolloutColumns,
	})
}

func newRolloutHistory(g *globals) *cobra.Command {
	var endpoint string
	var limit int
	c := &cobra.Command{Use: "history", Short: "List which deployment, model version and digest served what share of an endpoint, and when"}
	c.Flags().StringVarP(&endpoint, "endpoint-name", "e", "", "endpoint name")
	c.Flags().IntVar(&limit, "limit", 0, "newest changes to show (default: all)")
	return g.apiVerb(c, &verb{
		required: []string{"endpoint-name"},
		call: func(ctx context.Context, cn *conn) (any, error) {
			h, err := cn.api.TrafficHistory(ctx, endpoint, limit)
			if h == nil {
				h = []api.TrafficChange{}
			}
			return h, err
		},
		cols: historyColumns,
	})
}
