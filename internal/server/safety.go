package server

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/plumbline/plumbline/internal/apiserver"
	"github.com/plumbline/plumbline/internal/capture"
	"github.com/plumbline/plumbline/internal/compare"
	"github.com/plumbline/plumbline/internal/datadir"
	"github.com/plumbline/plumbline/internal/gateway"
	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/rollout"
	"github.com/plumbline/plumbline/internal/spec"
	"github.com/plumbline/plumbline/internal/store"
)

// The safe-rollout wiring: what the routing table carries for it (an
// endpoint's comparison settings, a deployment's capture, a running
// rollout's step, each instance's model), the writer of the gateway's
// figures to the store, and the capture sink.

// compareOf reads an endpoint's plumbline.compare.
func compareOf(e store.Endpoint) *gateway.Compare {
	var ep spec.Endpoint
	if json.Unmarshal(e.Spec, &ep) != nil || ep.Plumbline == nil || ep.Plumbline.Compare == nil {
		return nil
	}
	c := ep.Plumbline.Compare
	out := &gateway.Compare{Path: c.Path, Tolerance: compare.DefaultTolerance}
	if c.Tolerance != nil {
		out.Tolerance = *c.Tolerance
	}
	if c.RelativeTolerance != nil {
		out.RelativeTolerance = *c.RelativeTolerance
	}
	return out
}

// captureOf reads a deployment's plumbline.capture.
func captureOf(rec *resolve.Record) *gateway.Capture {
	var d spec.Deployment
	if len(rec.Document) == 0 || json.Unmarshal(rec.Document, &d) != nil || d.Plumbline == nil || d.Plumbline.Capture == nil {
		return nil
	}
	c := d.Plumbline.Capture
	out := &gateway.Capture{SamplingRate: 1, Redact: c.Redact, Hash: c.Hash, RollingRate: strings.ToLower(c.RollingRate)}
	if c.SamplingRate != nil {
		out.SamplingRate = *c.SamplingRate
	}
	if c.MaxBodyBytes != nil {
		out.MaxBodyBytes = *c.MaxBodyBytes
	}
	if c.MaxFileMB != nil {
		out.MaxFileBytes = int64(*c.MaxFileMB) << 20
	}
	if c.MaxFiles != nil {
		out.MaxFiles = *c.MaxFiles
	}
	if c.Sink != nil {
		out.SinkURL, out.SinkHeaders = c.Sink.URL, c.Sink.Headers
	}
	return out
}

// provenanceOf names the model of an instance that does not run the
// deployment's current plan: the previous version's, during a rolling
// update.
func provenanceOf(in *gateway.Instance, rec *resolve.Record, serving *resolve.Plan, template string) {
	prev := rec.Previous
	if prev == nil || prev.Plan == nil || prev.Plan == serving || !prev.Plan.TemplateMatches(template) {
		return
	}
	p := prev.Plan
	if p.ModelName != serving.ModelName || p.ModelVersion != serving.ModelVersion || p.ModelDigest != serving.ModelDigest {
		in.ModelName, in.ModelVersion, in.ModelDigest = p.ModelName, p.ModelVersion, p.ModelDigest
	}
}

// applyRollouts gives each endpoint with a running rollout its step.
func applyRollouts(snap *gateway.Snapshot, rs []store.Rollout) {
	for _, r := range rs {
		ep := snap.Endpoints[strings.ToLower(r.Endpoint)]
		if ep == nil || r.State != store.RolloutRunning {
			continue
		}
		step, err := rollout.CurrentStep(r)
		if err != nil {
			continue
		}
		ep.Rollout = &gateway.Rollout{
			Candidate: strings.ToLower(r.Deployment), Shadow: step.Kind == rollout.StepShadow,
			MinRequests: step.MinRequests, Fallback: copyMap(r.Baseline),
			MaxErrorRate: step.Gates.MaxErrorRate, MaxLatencyRatio: step.Gates.MaxLatencyRatio,
			MaxContractViolationRate: step.Gates.MaxContractViolationRate,
		}
		delete(ep.Rollout.Fallback, ep.Rollout.Candidate)
	}
}

// figureWriter writes this process's gateway figures and diff samples to
// the store, every interval and at once when a gate breached.
type figureWriter struct {
	gw     *gateway.Gateway
	st     store.Store
	source string
	log    *slog.Logger
	// wake, if set, is signalled after a breach was written (the rollout
	// controller in this process looks at once).
	wake chan<- struct{}
}

// figureInterval is how often figures reach the store.
const figureInterval = 250 * time.Millisecond

// diffsKept is how many sampled diffs the store keeps per comparison.
const diffsKept = 50

// newSource names this process's figures: its replica and a random
// suffix, so a restarted gateway never overwrites what it wrote before.
func newSource(replica string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%x", replica, b)
}

// Start writes until ctx ends, then once more.
func (w *figureWriter) Start(ctx context.Context) error {
	t := time.NewTicker(figureInterval)
	defer t.Stop()
	for {
		urgent := false
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			w.flush(fctx)
			cancel()
			return nil
		case <-t.C:
		case <-w.gw.FlushNow():
			urgent = true
		}
		w.flush(ctx)
		if urgent && w.wake != nil {
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
	}
}

func (w *figureWriter) flush(ctx context.Context) {
	ms := w.gw.TakeFigures()
	if len(ms) > 0 {
		rows := make([]store.Stats, 0, len(ms))
		for _, m := range ms {
			var v any = m.Pair
			if m.Deployment != nil {
				v = m.Deployment
			}
			b, err := json.Marshal(v)
			if err != nil {
				w.log.Error("figures: encode", "err", err)
				continue
			}
			rows = append(rows, store.Stats{Source: w.source, Endpoint: m.Endpoint, Epoch: m.Epoch, Kind: m.Kind, Subject: m.Subject, Figures: b})
		}
		if err := w.st.PutStats(ctx, rows); err != nil && ctx.Err() == nil {
			// The figures are cumulative: the next write carries these too.
			w.log.Warn("figures: write to the store", "err", err)
			w.gw.Remeasure(ms)
		}
	}
	ds := w.gw.TakeDiffs()
	if len(ds) > 0 {
		rows := make([]store.DiffSample, 0, len(ds))
		for _, d := range ds {
			b, err := json.Marshal(d)
			if err != nil {
				continue
			}
			rows = append(rows, store.DiffSample{Endpoint: d.Endpoint, Epoch: d.Epoch, Kind: d.Kind, Subject: gateway.PairSubject(d.Live, d.Shadow), Time: d.Time, Body: b})
		}
		if err := w.st.AppendDiffSamples(ctx, rows, diffsKept); err != nil && ctx.Err() == nil {
			w.log.Warn("figures: write diff samples", "err", err)
		}
	}
}

// captureSink writes the gateway's captured records with a capture.Writer.
type captureSink struct{ w *capture.Writer }

func (s captureSink) WriteCapture(rec *gateway.CaptureRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	c := rec.Config
	return s.w.Write(capture.Target{
		Endpoint: rec.Endpoint, Deployment: rec.Deployment, RollingRate: c.RollingRate,
		MaxFileBytes: c.MaxFileBytes, MaxFiles: c.MaxFiles, SinkURL: c.SinkURL, SinkHeaders: c.SinkHeaders,
	}, rec.Time, b)
}

// captureKey is the key of capture's hash rules, created once and kept in
// the store so that every gateway hashes alike.
func captureKey(ctx context.Context, st store.Store) ([]byte, error) {
	return storedSecret(ctx, st, "capture_hash_key")
}

// safetyParts are a gateway replica's capture writer, capture key and the
// channel that wakes the rollout controller after a breach.
type safetyParts struct {
	writer  *capture.Writer
	sink    gateway.CaptureSink
	hashKey []byte
	source  string
	wake    chan struct{}
}

func captureDir(dd *datadir.Dir) string { return filepath.Join(dd.Root, "capture") }

func newSafetyParts(ctx context.Context, cfg Config, dd *datadir.Dir, st store.Store, reg prometheus.Registerer, log *slog.Logger) (*safetyParts, error) {
	key, err := captureKey(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("capture key: %w", err)
	}
	w, err := capture.New(capture.Config{Dir: captureDir(dd), Source: cfg.ReplicaID, Logger: log.With("component", "capture"), Registerer: reg})
	if err != nil {
		return nil, err
	}
	return &safetyParts{writer: w, sink: captureSink{w}, hashKey: key, source: newSource(cfg.ReplicaID), wake: make(chan struct{}, 1)}, nil
}

func (p *safetyParts) figureWriter(gw *gateway.Gateway, st store.Store, log *slog.Logger) *figureWriter {
	return &figureWriter{gw: gw, st: st, source: p.source, log: log.With("component", "figures"), wake: p.wake}
}

// close flushes the capture sinks (5 s at most) and closes the files.
func (p *safetyParts) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = p.writer.Close(ctx)
}

// runRollouts runs the rollout controller while this replica leads; the
// returned func stops it and waits.
func (c *control) runRollouts(ctx context.Context) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	ctl := &rollout.Controller{
		Store: c.st, Log: c.log.With("component", "rollouts"), Fence: c.elect.fence, OnChange: c.sync, Wake: c.rolloutWake,
	}
	go func() {
		defer close(done)
		_ = ctl.Start(ctx)
	}()
	return func() { cancel(); <-done }
}

// replayer presents the gateway's Replay to the API (nil without one).
func replayer(gw *gateway.Gateway) apiserver.Replayer {
	if gw == nil {
		return nil
	}
	return gatewayReplayer{gw}
}

type gatewayReplayer struct{ gw *gateway.Gateway }

func (r gatewayReplayer) Replay(ctx context.Context, endpoint, from, to string, reqs []apiserver.ReplayInput) (apiserver.ReplayResult, error) {
	in := make([]gateway.ReplayRequest, len(reqs))
	for i, q := range reqs {
		in[i] = gateway.ReplayRequest{RequestID: q.RequestID, Body: q.Body, Answer: q.Answer, Status: q.Status, Seconds: q.Seconds}
	}
	sum, err := r.gw.Replay(ctx, endpoint, from, to, in)
	if errors.Is(err, gateway.ErrReplayTarget) {
		err = fmt.Errorf("%w: %w", apiserver.ErrReplayTarget, err)
	}
	return apiserver.ReplayResult{Sent: sum.Sent, Answered: sum.Answered, Compared: sum.Compared, Agreed: sum.Agreed, Dropped: sum.Dropped}, err
}
