package gateway

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// closedAfterEOF is an inbound body the server closes once the response
// starts: reads after its EOF fail.
type closedAfterEOF struct {
	r   io.Reader
	eof bool
}

func (c *closedAfterEOF) Read(p []byte) (int, error) {
	if c.eof {
		return 0, http.ErrBodyReadAfterClose
	}
	n, err := c.r.Read(p)
	if err == io.EOF {
		c.eof = true
	}
	return n, err
}

func (c *closedAfterEOF) Close() error { return nil }

// TestBodyReaderEOFIsSticky: the transport's extra read after the body must
// see EOF, not the closed body's error, or it drops the upstream connection
// while the response is copied (golang/go#40747).
func TestBodyReaderEOFIsSticky(t *testing.T) {
	var b bodyReader
	b.init(&closedAfterEOF{r: strings.NewReader(`{"x":[1]}`)}, 1<<20)
	got, err := io.ReadAll(&b)
	if err != nil || string(got) != `{"x":[1]}` {
		t.Fatalf("got %q, %v; want the body", got, err)
	}
	for i := 0; i < 3; i++ {
		if n, err := b.Read(make([]byte, 8)); n != 0 || err != io.EOF {
			t.Errorf("read %d after EOF: got %d, %v; want 0, io.EOF", i, n, err)
		}
	}
	if b.failed.Load() != bodyOK {
		t.Errorf("body marked failed after a clean EOF")
	}
}
