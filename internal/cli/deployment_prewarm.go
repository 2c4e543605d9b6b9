package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/api"
)

// prewarmWait bounds how long prewarm waits for the instances.
const prewarmWait = 10 * time.Minute

func newDeploymentPrewarm(g *globals) *cobra.Command {
	var name, endpoint string
	var instances int
	var duration time.Duration
	var cancel, noWait bool
	c := &cobra.Command{
		Use:   "prewarm",
		Short: "Start an autoscaled deployment's instances ahead of traffic and keep them for a while (plumbline's extension)",
		Long: `Pre-warm an autoscaled deployment (scale_settings type target_utilization):
run at least --instances instances now and keep them for --duration, whatever
the load, then let the autoscaler decide again. A deployment scaled to zero
(min_instances 0) answers its first requests without a cold start.

Without --instances, min_instances or 1, whichever is more; without
--duration, the deployment's plumbline.autoscale.scale_to_zero_after (300 s
by default). --cancel ends a pre-warm. The command waits until the
instances are ready, printing their events, unless --no-wait.

To pre-warm on a schedule, run it from cron, e.g. every weekday at 08:00
for nine hours:
  0 8 * * 1-5  plumbline online-deployment prewarm -n blue -e my-endpoint --duration 9h`,
		Example: `  plumbline online-deployment prewarm --name blue --endpoint-name my-endpoint
  plumbline online-deployment prewarm -n blue -e my-endpoint --instances 3 --duration 30m
  plumbline online-deployment prewarm -n blue -e my-endpoint --cancel`,
	}
	f := c.Flags()
	f.StringVarP(&name, "name", "n", "", "deployment name")
	f.StringVarP(&endpoint, "endpoint-name", "e", "", "endpoint name")
	f.IntVar(&instances, "instances", 0, "instances to run at least (default: min_instances, at least 1)")
	f.DurationVar(&duration, "duration", 0, "how long to keep them, e.g. 30m or 9h (default: the deployment's scale_to_zero_after)")
	f.BoolVar(&cancel, "cancel", false, "end a pre-warm now")
	f.BoolVar(&noWait, "no-wait", false, "return once the pre-warm is recorded, without waiting for the instances")
	return g.apiVerb(c, &verb{
		required: []string{"name", "endpoint-name"},
		check: func(c *cobra.Command) error {
			switch {
			case instances < 0:
				return usageErrorf("--instances %d: want 1 or more", instances)
			case duration < 0 || (duration > 0 && duration < time.Second):
				return usageErrorf("--duration %s: want a second or more, e.g. 30m", duration)
			case cancel && (instances != 0 || duration != 0):
				return usageErrorf("--cancel ends a pre-warm: it takes no --instances or --duration")
			}
			return nil
		},
		call: func(ctx context.Context, cn *conn) (any, error) {
			start, mark := time.Now(), cn.eventMark(ctx, endpoint)
			d, err := cn.api.PrewarmDeployment(ctx, endpoint, name, api.Prewarm{
				Instances: instances, DurationSeconds: int(duration / time.Second), Cancel: cancel,
			})
			if err != nil {
				return nil, err
			}
			if cancel {
				fmt.Fprintf(g.stderr, "Pre-warm of %s/%s cancelled; the autoscaler decides again\n", endpoint, name)
				return d, nil
			}
			want := instances
			if want == 0 && d.ScaleStatus != nil {
				want = max(1, d.ScaleStatus.MinInstances)
			}
			if noWait {
				fmt.Fprintf(g.stderr, "Pre-warming %s/%s to %d instance(s); follow with: plumbline online-deployment show -n %s -e %s\n", endpoint, name, want, name, endpoint)
				return d, nil
			}
			return cn.waitPrewarm(ctx, g, endpoint, name, want, start, mark)
		},
		cols: deploymentColumns,
	})
}

// waitPrewarm follows a pre-warm until want instances are ready, printing
// the deployment's events as they happen.
func (cn *conn) waitPrewarm(ctx context.Context, g *globals, endpoint, name string, want int, start time.Time, after int64) (*api.Deployment, error) {
	ctx, cancel := context.WithTimeout(ctx, prewarmWait)
	defer cancel()
	for {
		after = cn.printEvents(ctx, g, endpoint, name, start, after)
		d, err := cn.api.GetDeployment(ctx, endpoint, name)
		if err != nil {
			return nil, describe(err)
		}
		if st := d.ScaleStatus; st != nil && st.ReadyInstances >= want {
			until := ""
			if st.PrewarmUntil != nil {
				until = " until " + st.PrewarmUntil.Local().Format("15:04:05")
			}
			fmt.Fprintf(g.stderr, "Deployment %s/%s pre-warmed: %d ready instance(s) in %.1fs%s\n", endpoint, name, st.ReadyInstances, time.Since(start).Seconds(), until)
			return d, nil
		}
		if d.ProvisioningState == api.StateFailed {
			return d, fmt.Errorf("deployment %s/%s is Failed: %s\nSee the logs with: plumbline online-deployment get-logs --name %s --endpoint-name %s", endpoint, name, d.Reason, name, endpoint)
		}
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				ready := 0
				if d.ScaleStatus != nil {
					ready = d.ScaleStatus.ReadyInstances
				}
				return d, fmt.Errorf("deployment %s/%s: %d of %d instance(s) ready after %s; see why with: plumbline online-deployment events -n %s -e %s", endpoint, name, ready, want, prewarmWait, name, endpoint)
			}
			return nil, ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}
