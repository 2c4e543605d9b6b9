package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/spec"
)

// The online-deployment verbs: deployment_create.go, deployment_update.go,
// deployment_show.go, deployment_list.go, deployment_delete.go,
// deployment_get_logs.go, deployment_events.go, deployment_prewarm.go,
// deployment_rollout.go, deployment_capture.go.

var deploymentColumns = []column{
	field("NAME", "name"), field("ENDPOINT", "endpoint_name"),
	{header: "STATE", cell: func(r map[string]any) string {
		if sv, ok := r["serving"].(map[string]any); ok && sv["summary"] != nil {
			return cellString(sv["summary"])
		}
		return cellString(r["provisioning_state"])
	}},
	field("MODEL", "model"), field("RUNTIME", "runtime"),
	{header: "READY", cell: func(r map[string]any) string {
		ins, _ := r["instances"].([]any)
		ready := 0
		for _, i := range ins {
			if m, ok := i.(map[string]any); ok && m["ready"] == true {
				ready++
			}
		}
		want := cellString(r["instance_count"])
		if st, ok := r["scale_status"].(map[string]any); ok {
			want = cellString(st["desired_instances"]) // autoscaled: what the autoscaler wants now
		}
		return fmt.Sprintf("%d/%s", ready, want)
	}},
	{header: "ERRORS (5 MIN)", cell: func(r map[string]any) string { return healthCell(r, "errors") }},
	{header: "P50", cell: func(r map[string]any) string { return healthCell(r, "p50_ms") }},
	{header: "P99", cell: func(r map[string]any) string { return healthCell(r, "p99_ms") }},
	field("REASON", "reason"),
}

// healthCell renders one of a deployment's recent figures: errors as
// "2/103 (1.9%)", latencies in ms, "-" without requests.
func healthCell(r map[string]any, name string) string {
	h, ok := r["health"].(map[string]any)
	if !ok {
		return "-"
	}
	reqs, _ := h["requests"].(float64)
	if reqs == 0 {
		return "-"
	}
	switch name {
	case "errors":
		errs, _ := h["errors"].(float64)
		rate, _ := h["error_rate"].(float64)
		return fmt.Sprintf("%.0f/%.0f (%.1f%%)", errs, reqs, rate*100)
	default:
		v, ok := h[name].(float64)
		if !ok {
			return "-"
		}
		return fmt.Sprintf("%.1f ms", v)
	}
}

func newDeploymentCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "online-deployment", Aliases: []string{"deployment"}, Short: "Manage online deployments: create, update, scale, logs"}
	c.AddCommand(newDeploymentCreate(g), newDeploymentUpdate(g), newDeploymentShow(g), newDeploymentList(g),
		newDeploymentDelete(g), newDeploymentLogs(g), newDeploymentEvents(g), newDeploymentPrewarm(g), newDeploymentRollout(g), newDeploymentCapture(g))
	return c
}

// parseDeploymentFile reads a deployment file with the generic update
// arguments, --name and --endpoint-name applied, validates it and reports
// its notices.
func parseDeploymentFile(g *globals, file string, ups []spec.Update, name, endpoint string) (*spec.Deployment, error) {
	doc, err := spec.Load(file, spec.ParseOptions{Updates: withFlags(ups, "name="+name, "endpoint_name="+endpoint), Expect: spec.KindDeployment})
	if err != nil {
		return nil, err
	}
	d := doc.Deployment
	if d.EndpointName == "" {
		return nil, usageErrorf("%s has no endpoint_name: add it to the file or pass --endpoint-name", file)
	}
	reportNotices(g.stderr, doc)
	return d, nil
}

// deploymentDocument uploads d's local paths (model, code, build context,
// conda file), rewriting them to digests, and returns the document to send.
func (cn *conn) deploymentDocument(ctx context.Context, g *globals, d *spec.Deployment) ([]byte, error) {
	if err := cn.uploadLocalPaths(ctx, g, d.LocalPaths()); err != nil {
		return nil, err
	}
	return json.Marshal(d)
}

// uploadLocalPaths uploads every local path and rewrites it to its digest.
func (cn *conn) uploadLocalPaths(ctx context.Context, g *globals, refs []spec.PathRef) error {
	for _, ref := range refs {
		if _, err := os.Stat(ref.Path); err != nil {
			return fmt.Errorf("%s: %s: %w", ref.Field, ref.Path, err)
		}
		digest, err := cn.upload(ctx, g, ref.Field, ref.Path)
		if err != nil {
			return err
		}
		ref.Set(digest)
	}
	return nil
}

// setAllTraffic gives the deployment 100% of the endpoint's live traffic.
func (cn *conn) setAllTraffic(ctx context.Context, g *globals, endpoint, name string) error {
	doc, err := cn.api.GetEndpointDocument(ctx, endpoint)
	if err != nil {
		return describe(err)
	}
	ep, err := parseEndpointBytes("endpoint "+endpoint, doc, nil)
	if err != nil {
		return err
	}
	ep.Traffic = map[string]int{strings.ToLower(name): 100}
	delete(ep.MirrorTraffic, strings.ToLower(name))
	doc, err = json.Marshal(ep)
	if err != nil {
		return err
	}
	if _, err := cn.api.UpdateEndpoint(ctx, endpoint, doc); err != nil {
		return describe(err)
	}
	fmt.Fprintf(g.stderr, "Endpoint %s now sends 100%% of its traffic to %s\n", endpoint, name)
	return nil
}

// printEvents prints the deployment's events after the id after, with the
// time since start, and returns the last id printed.
func (cn *conn) printEvents(ctx context.Context, g *globals, endpoint, name string, start time.Time, after int64) int64 {
	evs, err := cn.api.Events(ctx, api.EventFilter{Endpoint: endpoint, Deployment: name, AfterID: after})
	if err != nil {
		return after
	}
	for _, e := range evs {
		after = e.ID
		who := e.Deployment
		if e.Instance != "" {
			who = e.Instance
		}
		fmt.Fprintf(g.stderr, "[%5.1fs] %-10s %-20s %s\n", time.Since(start).Seconds(), who, e.Reason, e.Message)
	}
	return after
}

// waitDeployment follows a deployment until it is Succeeded or Failed,
// printing its events as they happen.
// Only events after the mark (eventMark, taken before the change) print.
func (cn *conn) waitDeployment(ctx context.Context, g *globals, endpoint, name string, start time.Time, after int64) (*api.Deployment, error) {
	for {
		after = cn.printEvents(ctx, g, endpoint, name, start, after)
		d, err := cn.api.GetDeployment(ctx, endpoint, name)
		if err != nil {
			return nil, describe(err)
		}
		switch d.ProvisioningState {
		case api.StateSucceeded:
			fmt.Fprintf(g.stderr, "Deployment %s/%s Succeeded in %.1fs\n", endpoint, name, time.Since(start).Seconds())
			return d, nil
		case api.StateFailed:
			return d, fmt.Errorf("deployment %s/%s Failed: %s\nSee the logs with: plumbline online-deployment get-logs --name %s --endpoint-name %s", endpoint, name, d.Reason, name, endpoint)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

// eventMark is the newest event id of the endpoint, taken before a change
// so that waitDeployment prints only what the change caused.
func (cn *conn) eventMark(ctx context.Context, endpoint string) int64 {
	evs, err := cn.api.Events(ctx, api.EventFilter{Endpoint: endpoint, Limit: 1})
	if err != nil || len(evs) == 0 {
		return 0
	}
	return evs[len(evs)-1].ID
}
