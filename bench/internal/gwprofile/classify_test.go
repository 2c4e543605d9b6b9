package gwprofile

import (
	"testing"

	"github.com/google/pprof/profile"
)

// sample builds a CPU sample from function names, innermost first.
func sample(v int64, frames ...string) *profile.Sample {
	s := &profile.Sample{Value: []int64{1, v}}
	for _, f := range frames {
		s.Location = append(s.Location, &profile.Location{Line: []profile.Line{{Function: &profile.Function{Name: f}}}})
	}
	return s
}

func TestClassify(t *testing.T) {
	gw := "github.com/plumbline/plumbline/internal/gateway."
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		Sample: []*profile.Sample{
			// A write system call made by the access log is the access log's.
			sample(10, "internal/runtime/syscall/linux.Syscall6", "syscall.write", "os.(*File).Write", gw+"(*AccessLog).flush"),
			// Allocation is the runtime's, whoever asked for it.
			sample(20, "runtime.mallocgc", gw+"(*upstreamConn).headers", gw+"(*Gateway).exchange"),
			// Any other system call is a socket read or write.
			sample(30, "internal/runtime/syscall/linux.Syscall6", "syscall.read", "net.(*conn).Read", gw+"(*upstreamConn).Read", "bufio.(*Reader).fill"),
			// The rest goes to the layer that ran.
			sample(40, gw+"(*upstreamConn).readHead", gw+"(*Gateway).exchange", "net/http.(*conn).serve"),
		},
	}
	got := map[string]float64{}
	for _, s := range classify(p) {
		got[s.Category] = s.Fraction
	}
	want := map[string]float64{"access log": 0.1, "allocation": 0.2, "system calls: socket reads and writes": 0.3, "upstream: read response": 0.4}
	for k, v := range want {
		if d := got[k] - v; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s: got %.3f, want %.3f (all: %v)", k, got[k], v, got)
		}
	}
}
