package harness

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/plumbline/plumbline/bench/internal/load"
)

const rolloutEndpoint = "rollbench"

// settleAfterAction is how long after a command returns the split is
// assumed to have reached the gateway; answers before it count for
// failures but not for split accuracy.
const settleAfterAction = 250 * time.Millisecond

// rollout is scenario 4: constant load while traffic moves from blue to
// green in steps, green's instances are replaced one by one, and blue is
// deleted.
func (e *env) rollout(ctx context.Context) error {
	c := e.cfg
	s, err := e.serveHTTPS(ctx)
	if err != nil {
		return err
	}
	key, err := e.createEndpoint(ctx, s, rolloutEndpoint)
	if err != nil {
		return err
	}
	const instances, maxConcurrent = 2, 64
	if err := e.createGeneric(ctx, s, rolloutEndpoint, "blue", nil, maxConcurrent, instances); err != nil {
		return err
	}
	traffic := func(split string) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := s.CLI(ctx, "online-endpoint", "update", "--name", rolloutEndpoint, "--traffic", split, "-o", "json")
			return err
		}
	}
	if err := traffic("blue=100")(ctx); err != nil {
		return err
	}

	type answer struct {
		start time.Time
		code  int
		dep   string
		err   string
	}
	var mu sync.Mutex // protects answers
	var answers []answer
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	total := make(chan load.Stats, 1)
	go func() {
		total <- load.ConstantRate{
			Targets: []load.Target{scoreTarget(s, rolloutEndpoint, key, scoreBody)},
			Rate:    c.RolloutRate,
			Client:  s.ClientOptions(true),
			OnResult: func(r load.Result) {
				mu.Lock()
				answers = append(answers, answer{r.Start, r.Code, r.Deployment, r.Err})
				mu.Unlock()
			},
		}.Run(loadCtx)
	}()

	steps := []struct {
		name, action string
		green        int
		do           func(context.Context) error
	}{
		{"blue 100 %", "", 0, nil},
		{"create green", "online-deployment create (green, 2 instances, no traffic)", 0, func(ctx context.Context) error {
			return e.createGeneric(ctx, s, rolloutEndpoint, "green", nil, maxConcurrent, instances)
		}},
		{"green 10 %", `online-endpoint update --traffic "blue=90 green=10"`, 10, traffic("blue=90 green=10")},
		{"green 50 %", `online-endpoint update --traffic "blue=50 green=50"`, 50, traffic("blue=50 green=50")},
		{"green 100 %", `online-endpoint update --traffic "green=100"`, 100, traffic("green=100")},
		{"roll green", "online-deployment update --set environment_variables.BENCH_GENERATION=2 (one instance at a time)", 100, func(ctx context.Context) error {
			_, err := s.CLI(ctx, "online-deployment", "update", "--name", "green", "--endpoint-name", rolloutEndpoint,
				"--set", "environment_variables.BENCH_GENERATION=2", "-o", "json")
			return err
		}},
		{"delete blue", "online-deployment delete (blue, no traffic)", 100, func(ctx context.Context) error {
			_, err := s.CLI(ctx, "online-deployment", "delete", "--name", "blue", "--endpoint-name", rolloutEndpoint, "--yes")
			return err
		}},
	}
	r := &RolloutResult{Rate: c.RolloutRate}
	e.res.Rollout = r
	type window struct{ from, settled, to time.Time }
	windows := make([]window, len(steps))
	var stepErr error
	for i, st := range steps {
		w := window{from: time.Now()}
		var took time.Duration
		if st.do != nil {
			if err := st.do(ctx); err != nil {
				stepErr = fmt.Errorf("%s: %w", st.name, err)
				break
			}
			took = time.Since(w.from)
		}
		w.settled = time.Now().Add(settleAfterAction)
		select {
		case <-ctx.Done():
		case <-time.After(c.RolloutStep):
		}
		w.to = time.Now()
		windows[i] = w
		r.Steps = append(r.Steps, RolloutStep{Name: st.name, Action: st.action, Green: st.green, ActionTime: took})
		e.logf("rollout: %s (took %s)", st.name, took.Round(time.Millisecond))
	}
	stopLoad()
	r.Total = <-total
	for _, d := range []string{"blue", "green"} {
		r.StartToReady = append(r.StartToReady, startToReady(ctx, s.API, rolloutEndpoint, d)...)
	}

	mu.Lock()
	defer mu.Unlock()
	for _, a := range answers {
		ok := a.code >= 200 && a.code < 300
		if !ok {
			r.Failed++
			if len(r.Failures) < 5 {
				r.Failures = append(r.Failures, fmt.Sprintf("+%.2fs: status %d %s", a.start.Sub(windows[0].from).Seconds(), a.code, a.err))
			}
		}
		for i := range r.Steps {
			w := windows[i]
			if a.start.Before(w.from) || !a.start.Before(w.to) {
				continue
			}
			if !ok {
				r.Steps[i].Failed++
			} else if !a.start.Before(w.settled) {
				r.Steps[i].Counted++
				if a.dep == "green" {
					r.Steps[i].GreenAnswers++
				}
			}
		}
	}
	e.logf("rollout: %d requests at %d/s, %d failed", r.Total.Requests, r.Rate, r.Failed)
	return stepErr
}
