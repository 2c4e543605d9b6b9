// Package gcpace gives Go's garbage collector a minimum heap headroom.
//
// With the default GOGC=100 the collector runs each time the heap doubles
// over what survived the last collection. plumbline serve keeps only a few
// MiB live, so under load it collected every ~1 200 proxied requests (4 KiB
// of garbage each): 47 collections in a 4 s profile, 5.8 % of the gateway's
// CPU (docs/benchmarks.md, "Where the gateway's CPU goes"). Each collection
// also scans every goroutine's stack and wakes the mark workers on the other
// cores. Pace raises GOGC while the live heap is small, so that a collection
// comes after at least Headroom bytes of new garbage, and lets it fall back
// to 100 as the live heap grows past Headroom: a small server trades a
// bounded amount of memory (at most Headroom) for far fewer collections,
// and a large one behaves as Go's default.
//
// An operator's own GOGC (in the environment) wins: Start then does nothing.
//
// It imports nothing of plumbline's.
package gcpace

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// DefaultHeadroom is the garbage plumbline serve lets build up between
// collections at least: GOGC 300 for the 4 MiB a gateway keeps live, one
// collection per ~3 000 proxied requests instead of ~1 200, for at most
// 12 MiB more memory (serve's idle target is 60 MiB).
const DefaultHeadroom = 12 << 20

// maxPercent bounds the GOGC Pace sets (a nearly empty heap would ask for
// an unbounded one).
const maxPercent = 1000

// Percent is the GOGC that gives live bytes of live heap at least headroom
// bytes before the next collection: headroom/live, between 100 and 1000.
func Percent(live, headroom uint64) int {
	if live == 0 {
		return maxPercent
	}
	p := headroom * 100 / live
	return int(min(max(p, 100), maxPercent))
}

// pacer re-reads the live heap after each collection.
type pacer struct {
	ctx      context.Context
	headroom uint64
	sample   []metrics.Sample

	mu      sync.Mutex // protects current
	current int
}

// Start paces the collector until ctx ends, then restores GOGC=100. It
// reports false, and does nothing, when GOGC is set in the environment.
func Start(ctx context.Context, headroom uint64) bool {
	if _, set := os.LookupEnv("GOGC"); set {
		return false
	}
	p := &pacer{ctx: ctx, headroom: headroom, current: 100,
		sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	p.adjust()
	p.arm()
	context.AfterFunc(ctx, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		debug.SetGCPercent(100)
		p.current = 100
	})
	return true
}

// arm asks the runtime to call collected after the next collection: a
// cleanup on a fresh object no one references runs once a collection has
// found it unreachable.
func (p *pacer) arm() {
	sentinel := new([64]byte)
	runtime.AddCleanup(sentinel, func(p *pacer) { p.collected() }, p)
}

// collected runs on the runtime's cleanup goroutine after a collection.
func (p *pacer) collected() {
	if p.ctx.Err() != nil {
		return
	}
	p.adjust()
	p.arm()
}

// adjust sets GOGC for the live heap the last collection left, when it
// moved by more than a tenth (a change of GOGC is cheap, not free).
func (p *pacer) adjust() {
	metrics.Read(p.sample)
	if p.sample[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	want := Percent(p.sample[0].Value.Uint64(), p.headroom)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx.Err() != nil {
		return
	}
	if d := want - p.current; d*10 > p.current || -d*10 > p.current {
		debug.SetGCPercent(want)
		p.current = want
	}
}
