package gateway

import (
	"flag"
	"fmt"
	"os"
	"testing"
)

// TestMain runs the package's tests twice: with the front server on
// net/http's HTTP/1.1 server, then on the h1 loop (plumbline serve --http1
// fast), which must pass them all alike. Listing, fuzzing and benchmarks
// run once: the second pass is for the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 && testsOnly() {
		frontHTTP1 = "fast"
		code = m.Run()
		var served, handed uint64
		for _, l := range fastFronts.l {
			served += l.Served()
			handed += l.HandedOver()
		}
		if testing.Verbose() {
			fmt.Printf("the h1 loop pass: %d requests served by the loop, %d connections handed to net/http's server\n", served, handed)
		}
		if code == 0 && len(fastFronts.l) > 0 && served == 0 {
			fmt.Fprintf(os.Stderr, "FAIL: the second pass's front servers (the h1 loop) served no request themselves (%d connections handed over)\n", handed)
			code = 1
		}
	}
	os.Exit(code)
}

// testsOnly reports whether this run is for the tests alone: no -test.list,
// -test.fuzz or -test.bench.
func testsOnly() bool {
	for _, name := range []string{"test.list", "test.fuzz", "test.bench"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			return false
		}
	}
	return true
}
