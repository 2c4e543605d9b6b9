package load

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Flood holds connections that take a server's resources without asking
// anything of it: Silent connections that never send a byte, and
// Slowloris clients that (after a TLS handshake, when TLS is set) send a
// request head one byte every Interval and never finish it. Connection i
// comes from Sources[i % len(Sources)] — loopback addresses such as
// 127.0.0.20 — so that a per-address limit sees many clients.
type Flood struct {
	Addr      string
	Silent    int
	Slowloris int
	TLS       *tls.Config
	Sources   []net.IP
	// Interval is the pause between a slowloris client's bytes (default
	// 100 ms).
	Interval time.Duration
	// Path is the request path the slowloris clients start to send.
	Path string
}

// FloodRun is a flood in progress.
type FloodRun struct {
	conns []net.Conn
	stop  chan struct{}
	wg    sync.WaitGroup
	// closed counts connections the server closed.
	closed atomic.Int64
}

// Start opens the flood's connections and returns once all are open (and
// the slowloris clients' handshakes done).
func (f Flood) Start(ctx context.Context) (*FloodRun, error) {
	if f.Interval == 0 {
		f.Interval = 100 * time.Millisecond
	}
	if len(f.Sources) == 0 {
		f.Sources = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	r := &FloodRun{stop: make(chan struct{})}
	dial := func(i int) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: f.Sources[i%len(f.Sources)]}, Timeout: 10 * time.Second}
		return d.DialContext(ctx, "tcp", f.Addr)
	}
	for i := range f.Silent {
		c, err := dial(i)
		if err != nil {
			r.Stop()
			return nil, fmt.Errorf("flood: silent connection %d: %w", i, err)
		}
		r.conns = append(r.conns, c)
		r.wg.Add(1)
		go func() { // notices when the server closes it
			defer r.wg.Done()
			if _, err := c.Read(make([]byte, 1)); err == io.EOF {
				r.closed.Add(1)
			}
		}()
	}
	head := "POST " + f.Path + " HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + strings.Repeat("a", 4096)
	for i := range f.Slowloris {
		c, err := dial(f.Silent + i)
		if err != nil {
			r.Stop()
			return nil, fmt.Errorf("flood: slowloris %d: %w", i, err)
		}
		if f.TLS != nil {
			tc := tls.Client(c, f.TLS)
			_ = tc.SetDeadline(time.Now().Add(30 * time.Second))
			if err := tc.HandshakeContext(ctx); err != nil {
				_ = c.Close()
				r.Stop()
				return nil, fmt.Errorf("flood: slowloris %d: TLS handshake: %w", i, err)
			}
			_ = tc.SetDeadline(time.Time{})
			c = tc
		}
		r.conns = append(r.conns, c)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for j := 0; j < len(head); j++ {
				if _, err := c.Write([]byte{head[j]}); err != nil {
					r.closed.Add(1) // the server's header timeout closed it
					return
				}
				select {
				case <-r.stop:
					return
				case <-time.After(f.Interval):
				}
			}
		}()
	}
	return r, nil
}

// ClosedByServer counts the flood's connections the server closed so far.
func (r *FloodRun) ClosedByServer() int { return int(r.closed.Load()) }

// Stop closes every connection of the flood.
func (r *FloodRun) Stop() {
	select {
	case <-r.stop:
		return
	default:
		close(r.stop)
	}
	for _, c := range r.conns {
		_ = c.Close()
	}
	r.wg.Wait()
}
