package gateway

import (
	"os"
	"testing"
)

// TestMain runs the package's tests twice: with the front server on
// net/http's HTTP/1.1 server, then on the h1 loop (plumbline serve --http1
// fast), which must pass them all alike.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		frontHTTP1 = "fast"
		code = m.Run()
	}
	os.Exit(code)
}
