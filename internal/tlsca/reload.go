package tlsca

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultReloadInterval applies when NewReloader gets a zero interval.
const DefaultReloadInterval = 10 * time.Second

// Reloader serves a certificate and key from files (--tls-cert, --tls-key)
// and picks up new ones when the files change, without a restart. If a
// changed pair fails to load (half-written, mismatched), it keeps serving the
// previous certificate and logs why. Safe for concurrent use.
type Reloader struct {
	certFile, keyFile string
	interval          time.Duration

	// Logger receives reload successes (Info) and failures (Error). Set it
	// before Start; if nil, slog.Default().
	Logger *slog.Logger

	cert atomic.Pointer[tls.Certificate]

	mu   sync.Mutex // protects seen; serialises reloads
	seen [2]fileStamp
}

// fileStamp identifies one version of a file by its mtime and size.
type fileStamp struct {
	modNs int64
	size  int64
}

// NewReloader loads certFile and keyFile once (an error if they do not
// load) and returns a Reloader that polls them every interval once started.
// A zero interval means DefaultReloadInterval.
func NewReloader(certFile, keyFile string, interval time.Duration) (*Reloader, error) {
	if interval <= 0 {
		interval = DefaultReloadInterval
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, interval: interval}
	stamps, err := r.stamps()
	if err != nil {
		return nil, fmt.Errorf("tls certificate: %w", err)
	}
	if err := r.load(stamps); err != nil {
		return nil, err
	}
	return r, nil
}

// GetCertificate serves the current certificate (tls.Config.GetCertificate).
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// Start polls the files every interval until ctx ends, then returns nil.
func (r *Reloader) Start(ctx context.Context) error {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			r.pollOnce()
		}
	}
}

// pollOnce is one pass of Start's loop; a panic is logged, not fatal.
func (r *Reloader) pollOnce() {
	defer func() {
		if p := recover(); p != nil {
			r.logger().Error("tls certificate reload panicked", "panic", p, "stack", string(debug.Stack()))
		}
	}()
	changed, err := r.Reload()
	switch {
	case err != nil:
		r.logger().Error("tls certificate reload failed; still serving the previous certificate",
			"cert", r.certFile, "key", r.keyFile, "err", err)
	case changed:
		r.logger().Info("tls certificate reloaded", "cert", r.certFile,
			"not_after", r.cert.Load().Leaf.NotAfter)
	}
}

// Reload loads the pair if either file changed since the last attempt and
// reports whether a new certificate is now served. A pair that fails to load
// is not retried until a file changes again.
func (r *Reloader) Reload() (changed bool, err error) {
	stamps, err := r.stamps()
	if err != nil {
		return false, err
	}
	r.mu.Lock()
	same := stamps == r.seen
	r.mu.Unlock()
	if same {
		return false, nil
	}
	if err := r.load(stamps); err != nil {
		return false, err
	}
	return true, nil
}

func (r *Reloader) load(stamps [2]fileStamp) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = stamps
	pair, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("tls certificate %s / %s: %w", r.certFile, r.keyFile, err)
	}
	if pair.Leaf == nil {
		return errors.New("tls certificate: no leaf certificate")
	}
	r.cert.Store(&pair)
	return nil
}

func (r *Reloader) stamps() ([2]fileStamp, error) {
	var s [2]fileStamp
	for i, f := range [2]string{r.certFile, r.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return s, err
		}
		s[i] = fileStamp{modNs: fi.ModTime().UnixNano(), size: fi.Size()}
	}
	return s, nil
}

func (r *Reloader) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

// ServerTLSConfig returns the server side of plumbline's TLS: TLS 1.2 or
// later, HTTP/2 and HTTP/1.1 by ALPN, certificates from getCertificate
// (CA.GetCertificate or Reloader.GetCertificate).
func ServerTLSConfig(getCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: getCertificate,
	}
}
