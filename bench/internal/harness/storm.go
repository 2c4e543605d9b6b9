package harness

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/plumbline/plumbline/bench/internal/load"
	"github.com/plumbline/plumbline/bench/internal/proc"
)

// stormEndpoint is the endpoint of scenario 8.
const stormEndpoint = "stormbench"

// StormResult is scenario 8: a well-behaved client at a fixed rate, quiet
// and then during a flood of silent and slowloris connections.
type StormResult struct {
	Rate              int
	Silent, Slowloris int
	Sources           int
	Quiet, Flood      load.Stats
	// OpenDuring is plumbline_connections_open read during the flood;
	// ClosedByServer counts flood connections the server closed.
	OpenDuring     float64
	ClosedByServer int
	// MemBefore is serve's memory before the flood, MemDuring at its end.
	MemBefore, MemDuring proc.Mem
	SetUp                time.Duration // to open the flood
}

// storm is scenario 8.
func (e *env) storm(ctx context.Context) error {
	c := e.cfg
	s, err := e.serveHTTPS(ctx)
	if err != nil {
		return err
	}
	key, err := e.createEndpoint(ctx, s, stormEndpoint)
	if err != nil {
		return err
	}
	if err := e.createGeneric(ctx, s, stormEndpoint, "blue", nil, 1024, 1); err != nil {
		return err
	}
	if _, err := s.CLI(ctx, "online-endpoint", "update", "--name", stormEndpoint, "--traffic", "blue=100", "-o", "json"); err != nil {
		return err
	}
	r := &StormResult{Rate: c.StormRate, Silent: c.StormSilent, Slowloris: c.StormSlowloris, Sources: 24}
	e.res.Storm = r
	target := scoreTarget(s, stormEndpoint, key, scoreBody)
	opts := s.ClientOptions(true)
	opts.MaxConns = c.Conns
	tr := load.NewTransport(opts)
	defer tr.CloseIdleConnections()
	if err := warmUp(ctx, "storm", load.ClosedLoop{Targets: []load.Target{target}, Conns: 8, Client: s.ClientOptions(true)}, 200*time.Millisecond); err != nil {
		return err
	}
	run := func() load.Stats {
		return load.ConstantRate{Targets: []load.Target{target}, Rate: r.Rate, Duration: c.GatewayRun, Transport: tr}.Run(ctx)
	}
	run() // warm the pooled connections
	r.Quiet = run()
	e.logf("storm: quiet at %d/s: p50 %s p99 %s %s", r.Rate, fmtDur(r.Quiet.P50), fmtDur(r.Quiet.P99), r.Quiet.CodesString())
	r.MemBefore, _ = proc.ReadMem(s.Proc.Pid())

	var sources []net.IP
	for i := range r.Sources {
		sources = append(sources, net.IPv4(127, 0, 0, byte(20+i)))
	}
	start := time.Now()
	flood, err := load.Flood{Addr: fmt.Sprintf("127.0.0.1:%d", s.Port), Silent: r.Silent, Slowloris: r.Slowloris,
		TLS: s.TLSConfig(), Sources: sources, Path: "/endpoints/" + stormEndpoint + "/score"}.Start(ctx)
	if err != nil {
		return err
	}
	defer flood.Stop()
	r.SetUp = time.Since(start)
	r.OpenDuring = s.Metric(ctx, "plumbline_connections_open")
	e.logf("storm: %d silent and %d slowloris connections from %d addresses in %s; the server holds %.0f", r.Silent, r.Slowloris, r.Sources, fmtDur(r.SetUp), r.OpenDuring)
	r.Flood = run()
	r.MemDuring, _ = proc.ReadMem(s.Proc.Pid())
	r.ClosedByServer = flood.ClosedByServer()
	e.logf("storm: during the flood at %d/s: p50 %s p99 %s %s; serve RSS %d MiB (peak %d MiB)", r.Rate, fmtDur(r.Flood.P50), fmtDur(r.Flood.P99),
		r.Flood.CodesString(), r.MemDuring.RSS>>20, r.MemDuring.HWM>>20)
	return nil
}
