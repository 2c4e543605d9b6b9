package harness

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/bench/internal/load"
)

const deployEndpoint = "deploybench"

// deploy is scenario 5: `online-deployment create` of the iris example →
// the first 200 through the gateway (the request names the deployment in
// azureml-model-deployment, since it has no traffic yet), then `update
// --set instance_count=2` → the second instance ready (in routing). Each
// repeat uses a new deployment and deletes it afterwards.
func (e *env) deploy(ctx context.Context) error {
	ie, err := e.iris(ctx)
	if err != nil {
		return err
	}
	s, err := e.serveHTTPS(ctx)
	if err != nil {
		return err
	}
	key, err := e.createEndpoint(ctx, s, deployEndpoint)
	if err != nil {
		return err
	}
	r := &DeployResult{}
	e.res.Deploy = r
	client := &http.Client{Transport: load.NewTransport(s.ClientOptions(true)), Timeout: 5 * time.Second}
	for rep := range e.cfg.Repeats {
		name := fmt.Sprintf("iris-%d", rep+1)
		target := scoreTarget(s, deployEndpoint, key, ie.Body)
		target.Header = target.Header.Clone()
		target.Header.Set("azureml-model-deployment", name)

		start := time.Now()
		pollCtx, stopPoll := context.WithCancelCause(ctx)
		cliDone := make(chan error, 1)
		var cliTook time.Duration
		go func() {
			_, err := createIris(ctx, s, ie, deployEndpoint, name, 1, "--no-wait")
			cliTook = time.Since(start)
			if err != nil {
				stopPoll(err) // no point polling for a deployment that was refused
			}
			cliDone <- err
		}()
		first, err := firstOK(pollCtx, client, target, 2*time.Minute)
		cliErr := <-cliDone
		stopPoll(nil)
		if cliErr != nil {
			return cliErr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		r.FirstOK = append(r.FirstOK, first.Sub(start))
		r.CLIReturn = append(r.CLIReturn, cliTook)
		if err := waitState(ctx, s.API, deployEndpoint, name, api.StateSucceeded, time.Minute); err != nil {
			return err
		}
		r.Succeeded = append(r.Succeeded, time.Since(start))

		t1 := time.Now()
		if _, err := s.CLI(ctx, "online-deployment", "update", "--name", name, "--endpoint-name", deployEndpoint,
			"--set", "instance_count=2", "--no-wait", "-o", "json"); err != nil {
			return err
		}
		if err := s.WaitReady(ctx, deployEndpoint, name, 2, 2*time.Minute); err != nil {
			return err
		}
		r.ScaleReady = append(r.ScaleReady, time.Since(t1))
		ready := startToReady(ctx, s.API, deployEndpoint, name)
		r.FirstStartToReady = append(r.FirstStartToReady, tookFor(ready, name+"-0"))
		r.SecondStartToReady = append(r.SecondStartToReady, tookFor(ready, name+"-1"))
		e.logf("deploy %s: create → first 200 %s (CLI returned after %s), scale 1 → 2 ready %s",
			name, r.FirstOK[rep].Round(time.Millisecond), cliTook.Round(time.Millisecond), r.ScaleReady[rep].Round(time.Millisecond))
		if _, err := s.CLI(ctx, "online-deployment", "delete", "--name", name, "--endpoint-name", deployEndpoint, "--yes"); err != nil {
			return err
		}
	}
	return nil
}

// firstOK polls t every 20 ms until it answers 200 and returns when.
func firstOK(ctx context.Context, client *http.Client, t load.Target, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		code, _, body, err := load.Do(ctx, client, t)
		if err == nil && code == http.StatusOK {
			return time.Now(), nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("%d %s", code, body)
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("no 200 within %s; last answer: %s", timeout, last)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitState waits for a deployment's provisioning state.
func waitState(ctx context.Context, c *api.Client, endpoint, name, state string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		d, err := c.GetDeployment(ctx, endpoint, name)
		if err == nil && d.ProvisioningState == state {
			return nil
		}
		if err == nil && d.ProvisioningState == api.StateFailed {
			return fmt.Errorf("deployment %s/%s Failed: %s", endpoint, name, d.Reason)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("deployment %s/%s not %s within %s (last: %v)", endpoint, name, state, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// readyTime is how long one instance took from its Started event to its
// Ready event. Names are reused by replacements: the second green-1 is
// "green-1 (2)".
type readyTime struct {
	Instance string
	Took     time.Duration
}

// startToReady reads, from the server's events, how long each instance of
// the deployment took from Started to Ready, in the order they started.
func startToReady(ctx context.Context, c *api.Client, endpoint, name string) []readyTime {
	evs, err := c.Events(ctx, api.EventFilter{Endpoint: endpoint, Deployment: name})
	if err != nil {
		return nil
	}
	slices.SortFunc(evs, func(a, b api.Event) int { return cmp.Compare(a.ID, b.ID) })
	var out []readyTime
	pending := map[string]int{} // instance → index in out of its open start
	times := map[string]time.Time{}
	seen := map[string]int{}
	for _, ev := range evs {
		switch ev.Reason {
		case "Started":
			seen[ev.Instance]++
			label := ev.Instance
			if n := seen[ev.Instance]; n > 1 {
				label = fmt.Sprintf("%s (%d)", ev.Instance, n)
			}
			pending[ev.Instance] = len(out)
			times[ev.Instance] = ev.Time
			out = append(out, readyTime{Instance: label, Took: -1})
		case "Ready":
			if i, ok := pending[ev.Instance]; ok {
				out[i].Took = ev.Time.Sub(times[ev.Instance])
				delete(pending, ev.Instance)
			}
		}
	}
	return slices.DeleteFunc(out, func(r readyTime) bool { return r.Took < 0 })
}

// tookFor finds the first instance labelled instance.
func tookFor(rs []readyTime, instance string) time.Duration {
	for _, r := range rs {
		if r.Instance == instance {
			return r.Took
		}
	}
	return 0
}
