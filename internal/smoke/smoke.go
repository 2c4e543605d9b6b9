// Package smoke sends a deployment's sample request (plumbline.sample_request)
// straight to one new instance, before the instance joins the gateway's
// pool: the reconciler's SampleTester. A model that loads and answers its
// probes but fails every request (a crate saved without its model, a column
// the callers do not send) is caught here, before it gets traffic.
//
// It speaks plain HTTP to the instance's address, as the gateway does; it
// must not import the gateway, the store or the reconciler (which declares
// the interface).
package smoke

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/reconcile"
)

// Tester sends sample requests. The zero value is not usable; call New.
type Tester struct {
	client *http.Client
}

var _ reconcile.SampleTester = (*Tester)(nil)

// New returns a Tester.
func New() *Tester {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &Tester{client: &http.Client{
		Transport: &http.Transport{
			Proxy:             nil,
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				// The URL's host is a placeholder; the instance address
				// travels in the context (it may be a unix socket).
				target, _ := ctx.Value(addrKey{}).(string)
				network, address := driver.SplitAddr(target)
				return dialer.DialContext(ctx, network, address)
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type addrKey struct{}

// maxShown bounds how much of a failed answer's body the error quotes.
const maxShown = 1000

// TestSample POSTs t.Body to t.Path on the instance, with the request id
// "sample-<uuid>" so its lines in the instance log can be found, and
// reports anything but a 2xx within t.Timeout as an error that quotes the
// answer.
func (s *Tester) TestSample(ctx context.Context, t reconcile.SampleTarget) error {
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, addrKey{}, t.Addr), timeout)
	defer cancel()
	path := t.Path
	if path == "" {
		path = "/score"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://instance"+path, strings.NewReader(string(t.Body)))
	if err != nil {
		return err
	}
	id := "sample-" + uuid.NewString()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "plumbline-sample-request")
	req.Header.Set("x-request-id", id)
	resp, err := s.client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("no answer within %s (request_timeout_ms); x-request-id %s", timeout, id)
		}
		return fmt.Errorf("POST %s failed: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxShown+1))
	body := strings.Join(strings.Fields(string(b)), " ")
	if len(b) > maxShown {
		body = body[:min(len(body), maxShown)] + "…"
	}
	return fmt.Errorf("POST %s answered %s: %s", path, resp.Status, body)
}
