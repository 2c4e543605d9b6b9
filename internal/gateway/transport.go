package gateway

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"net"
	"net/http"
	"strings"
	"time"
)

// Upstream transport tuning. httpuv (plumber's server) writes a response's
// headers and body in two write() calls without TCP_NODELAY, so on a reused
// connection Nagle on its side holds the body until we ACK the headers, and
// Linux delays that ACK by 40 ms: 22 requests/s instead of hundreds.
// Re-arming TCP_QUICKACK before every read makes our side ACK at once.
// BenchmarkNagleUpstream reproduces the stall without R,
// BenchmarkPlumberUpstream with it.
const (
	upstreamDialTimeout    = 5 * time.Second
	upstreamKeepAlive      = 30 * time.Second
	upstreamIdleTimeout    = 90 * time.Second
	upstreamMaxIdlePerHost = 512
)

// NewUpstreamTransport returns the transport the gateway uses, when
// Config.Transport is nil, for what its own client (upstream.go) does not
// carry: mirrored copies, protocol upgrades and streamed request bodies.
// HTTP/1.1 only, keep-alive with up to 512 idle connections per instance,
// TCP_NODELAY, and (on Linux) TCP_QUICKACK re-armed before every read so
// that plumber/httpuv answers do not stall 40 ms on Nagle versus delayed
// ACK; unix-socket instances through urlHost. Compression is left to the
// client and the model: the proxy passes bodies through untouched.
func NewUpstreamTransport() *http.Transport {
	d := &net.Dialer{Timeout: upstreamDialTimeout, KeepAlive: upstreamKeepAlive}
	return &http.Transport{
		Proxy: nil, // instances are local or in-cluster; never via HTTP_PROXY
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if path, ok := unixPathOf(addr); ok {
				return d.DialContext(ctx, "unix", path)
			}
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return tuneConn(c), nil
		},
		MaxIdleConns:        4 * upstreamMaxIdlePerHost,
		MaxIdleConnsPerHost: upstreamMaxIdlePerHost,
		IdleConnTimeout:     upstreamIdleTimeout,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
		// A non-nil, empty map disables HTTP/2 upstream.
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
}

// Unix-socket instances ("unix:" + path) in URLs: http.Transport keys its
// connections by URL host, so the path is carried in a host name of its
// own, which DialContext turns back into the path.
const unixHostPrefix = "unix-socket-"

// urlHost returns the URL host and the Host header for an instance address.
func urlHost(addr string) (host, header string) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		return unixHostPrefix + hex.EncodeToString([]byte(path)), "localhost"
	}
	return addr, addr
}

// unixPathOf reverses urlHost for a dial address (host:port).
func unixPathOf(addr string) (string, bool) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	enc, ok := strings.CutPrefix(host, unixHostPrefix)
	if !ok {
		return "", false
	}
	b, err := hex.DecodeString(enc)
	if err != nil {
		return "", false
	}
	return string(b), true
}
