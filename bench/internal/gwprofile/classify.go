package gwprofile

import (
	"regexp"
	"sort"

	"github.com/google/pprof/profile"
)

// A category is one place the gateway spends CPU. Categories come in
// tiers: a sample belongs to the first tier with a category matching one of
// its frames, and within a tier to the innermost such frame. So runtime work
// (allocation, GC, scheduling) is charged to the runtime whoever caused it;
// the access log, metrics, auth and admission are charged everything they
// do (system calls included); other system calls are socket reads and
// writes; the rest goes to the layer that made them.
type category struct {
	Name string
	re   *regexp.Regexp
}

const gw = `github\.com/plumbline/plumbline/internal/gateway\.`

// h1 is the gateway's own HTTP/1.1 loop (serve --http1 fast).
const h1loop = `github\.com/plumbline/plumbline/internal/gateway/h1\.`

// tiers of categories, tried in order.
var tiers = [][]category{
	{
		{"garbage collection", regexp.MustCompile(`^runtime\.(gcBgMarkWorker|gcDrain|gcAssistAlloc|bgsweep|bgscavenge|markroot|scanobject|gcMarkDone|gcStart|sweepone|wbBufFlush|gcWriteBarrier)`)},
		{"allocation", regexp.MustCompile(`^runtime\.(mallocgc|newobject|makeslice|growslice|makemap|mapassign|newarray|rawstring|rawbyteslice|concatstring|slicebytetostring)`)},
		{"scheduler and netpoll", regexp.MustCompile(`^runtime\.(schedule|findRunnable|park_m|mcall|netpoll|stopm|startm|wakep|goready|ready|notewakeup|futex|gopark|goschedImpl|runqgrab|stealWork|checkTimers|handoffp|exitsyscall|entersyscall|morestack|newstack|newproc|goexit0)`)},
		{"runtime sysmon", regexp.MustCompile(`^runtime\.sysmon`)},
	},
	{
		{"access log", regexp.MustCompile(`^(log/slog\.|` + gw + `(\(\*accessLog\)|\(\*AccessLog\)|\(\*reqState\)\.logAttrs|\(\*Gateway\)\.finish|appendAccess))`)},
		{"metrics", regexp.MustCompile(`^github\.com/prometheus/`)},
		{"auth (key check)", regexp.MustCompile(`^` + gw + `\(\*Gateway\)\.authenticate`)},
		{"admission (pool)", regexp.MustCompile(`^` + gw + `\(\*pool\)`)},
		{"request ids", regexp.MustCompile(`^(` + gw + `(newRequestID|sanitizeClientRequestID)|github\.com/google/uuid)`)},
		{"upstream: TCP_QUICKACK", regexp.MustCompile(`^` + gw + `(setQuickAck|\(\*quickAckConn\)|\(\*upstreamConn\)\.armQuickAck)`)},
		{"connection limits", regexp.MustCompile(`^github\.com/plumbline/plumbline/internal/connlimit\.`)},
	},
	{
		{"system calls: socket reads and writes", regexp.MustCompile(`^(syscall\.|internal/runtime/syscall|internal/poll\.ignoringEINTRIO)`)},
	},
	{
		{"TLS records", regexp.MustCompile(`^(crypto/|vendor/golang\.org/x/crypto)`)},
		{"upstream: write request", regexp.MustCompile(`^(net/http\.\(\*persistConn\)\.writeLoop|net/http\.persistConnWriter|` + gw + `\(\*upstreamConn\)\.(writeRequest|write))`)},
		{"upstream: read response", regexp.MustCompile(`^(net/http\.\(\*persistConn\)\.readLoop|net/http\.ReadResponse|` + gw + `\(\*upstreamConn\)\.(readResponse|read|copyBody))`)},
		{"upstream: ReverseProxy and http.Transport", regexp.MustCompile(`^(net/http/httputil\.|net/http\.\(\*Transport\)|net/http\.\(\*persistConn\)|net/http\.\(\*Client\))`)},
		{"net/http server: read request", regexp.MustCompile(`^(net/http\.(\(\*conn\)\.readRequest|readRequest|\(\*connReader\)|\(\*body\))|net/textproto\.)`)},
		{"net/http server: write response", regexp.MustCompile(`^net/http\.(\(\*response\)|\(\*chunkWriter\)|checkConnErrorWriter|\(\*conn\)\.finalFlush)`)},
		{"h1 loop: write response", regexp.MustCompile(`^` + h1loop + `(\(\*response\)|\(\*chunkWriter\)|appendStatusLine|\(\*extraHeader\)|\(\*outWriter\))`)},
		{"HTTP/2 server", regexp.MustCompile(`^(golang\.org/x/net/http2|net/http\.\(\*http2|net/http\.http2)`)},
	},
	{
		{"h1 loop: connection loop", regexp.MustCompile(`^` + h1loop)},
		{"gateway: routing, split, proxy path", regexp.MustCompile(`^` + gw)},
		{"net/http server: connection loop", regexp.MustCompile(`^net/http\.`)},
	},
}

// Share is one category's part of the CPU samples.
type Share struct {
	Category string
	Fraction float64
}

// classify returns the categories' shares of p's CPU time, largest first.
func classify(p *profile.Profile) []Share {
	vi := 0
	for i, st := range p.SampleType {
		if st.Type == "cpu" {
			vi = i
		}
	}
	sums := map[string]int64{}
	var total int64
	for _, s := range p.Sample {
		v := s.Value[vi]
		total += v
		sums[categoryOf(s)] += v
	}
	out := make([]Share, 0, len(sums))
	for name, v := range sums {
		if total > 0 {
			out = append(out, Share{Category: name, Fraction: float64(v) / float64(total)})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Fraction != out[j].Fraction {
			return out[i].Fraction > out[j].Fraction
		}
		return out[i].Category < out[j].Category
	})
	return out
}

func categoryOf(s *profile.Sample) string {
	for _, tier := range tiers {
		for _, loc := range s.Location { // innermost first
			for _, ln := range loc.Line { // inlined frames: innermost first
				if ln.Function == nil {
					continue
				}
				for _, c := range tier {
					if c.re.MatchString(ln.Function.Name) {
						return c.Name
					}
				}
			}
		}
	}
	return "other"
}
