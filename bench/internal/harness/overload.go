package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/plumbline/plumbline/bench/internal/load"
)

const overloadEndpoint = "ovbench"

// overload is scenario 3: twice the capacity of two instances that each
// take OverloadDelay per request with max_concurrent_requests_per_instance
// 1. The backend counts the requests it has in flight; the gateway must
// never give it two, must answer the excess with 429 quickly, and must
// never answer 5xx.
func (e *env) overload(ctx context.Context) error {
	c := e.cfg
	s, err := e.serveHTTPS(ctx)
	if err != nil {
		return err
	}
	key, err := e.createEndpoint(ctx, s, overloadEndpoint)
	if err != nil {
		return err
	}
	const instances, maxConcurrent = 2, 1
	if err := e.createGeneric(ctx, s, overloadEndpoint, "blue", []string{"--delay", c.OverloadDelay.String()}, maxConcurrent, instances); err != nil {
		return err
	}
	if _, err := s.CLI(ctx, "online-endpoint", "update", "--name", overloadEndpoint, "--traffic", "blue=100", "-o", "json"); err != nil {
		return err
	}
	capacity := float64(instances*maxConcurrent) / c.OverloadDelay.Seconds()
	r := &OverloadResult{
		Instances: instances, MaxConcurrent: maxConcurrent, Delay: c.OverloadDelay,
		Capacity: capacity, Rate: int(2 * capacity), MaxSeen: map[string]int{},
	}
	e.res.Overload = r

	var mu sync.Mutex // protects the slices below
	var lat429, latOK []time.Duration
	r.Stats = load.ConstantRate{
		Targets:  []load.Target{scoreTarget(s, overloadEndpoint, key, scoreBody)},
		Rate:     r.Rate,
		Duration: c.OverloadRun,
		Client:   s.ClientOptions(true),
		OnResult: func(res load.Result) {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case res.Code == http.StatusTooManyRequests:
				lat429 = append(lat429, res.Latency)
			case res.Code >= 200 && res.Code < 300:
				latOK = append(latOK, res.Latency)
			}
		},
	}.Run(ctx)
	r.Count429, r.Count5xx = len(lat429), r.Stats.Count5xx()
	r.P50To429, r.P99To429 = load.Percentile(lat429, 0.5), load.Percentile(lat429, 0.99)
	r.P50OK, r.P99OK = load.Percentile(latOK, 0.5), load.Percentile(latOK, 0.99)
	e.logf("overload: %d/s for %s against capacity %.0f/s: %s; 429 p99 %s; 200 p99 %s",
		r.Rate, c.OverloadRun, capacity, r.Stats.CodesString(), r.P99To429, r.P99OK)

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	ins := s.Instances(overloadEndpoint, "")
	if len(ins) == 0 {
		return fmt.Errorf("no instance records for endpoint %s", overloadEndpoint)
	}
	for _, in := range ins {
		res, err := client.Get("http://127.0.0.1:" + strconv.Itoa(in.Port) + "/max")
		if err != nil {
			return fmt.Errorf("ask instance %s for its maximum: %w", in.ID, err)
		}
		var m struct {
			Max int `json:"max"`
		}
		err = json.NewDecoder(res.Body).Decode(&m)
		res.Body.Close()
		if err != nil {
			return fmt.Errorf("instance %s /max: %w", in.ID, err)
		}
		r.MaxSeen[in.ID] = m.Max
	}
	if r.Stats.OK == 0 {
		return fmt.Errorf("no request was admitted: %s %v", r.Stats.CodesString(), r.Stats.ErrorSamples)
	}
	return nil
}
