package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"net"
	"net/http"
	"strings"
	"sync"
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

// NewUpstreamTransport returns the transport the gateway uses to reach
// instances when Config.Transport is nil: HTTP/1.1 only, keep-alive with up
// to 512 idle connections per instance, TCP_NODELAY, and (on Linux)
// TCP_QUICKACK re-armed before every read so that plumber/httpuv answers do
// not stall 40 ms on Nagle versus delayed ACK. Compression is left to the
// client and the model: the proxy passes bodies through untouched.
func NewUpstreamTransport() *http.Transport {
	d := &net.Dialer{Timeout: upstreamDialTimeout, KeepAlive: upstreamKeepAlive}
	return &http.Transport{
		Proxy: nil, // instances are local or in-cluster; never via HTTP_PROXY
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if path, ok := unixSocketOf(addr); ok {
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

// Instance addresses are "host:port" or "unix:/abs/path" (a unix socket).
// A URL cannot carry a socket path as its host, so a unix address gets a
// stand-in host, "unix-<hash of the path>.sock:0", registered here; the
// transport's dialer maps it back to the path. Distinct sockets get distinct
// hosts, so connection pooling keeps them apart.
const unixAddrPrefix = "unix:"

var unixHosts sync.Map // stand-in host:port → socket path

// upstreamHost is the URL host that reaches addr.
func upstreamHost(addr string) string {
	path, ok := strings.CutPrefix(addr, unixAddrPrefix)
	if !ok {
		return addr
	}
	sum := sha256.Sum256([]byte(path))
	host := "unix-" + hex.EncodeToString(sum[:8]) + ".sock:0"
	unixHosts.Store(host, path)
	return host
}

// unixSocketOf returns the socket path behind a stand-in host.
func unixSocketOf(hostport string) (string, bool) {
	if !strings.HasPrefix(hostport, "unix-") {
		return "", false
	}
	p, ok := unixHosts.Load(hostport)
	if !ok {
		return "", false
	}
	return p.(string), true
}
