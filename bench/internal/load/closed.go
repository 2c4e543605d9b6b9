package load

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"time"
)

// ClosedLoop is a closed-loop run: Conns workers, each with a connection of
// its own, each sending its next request as soon as the previous one has
// answered. Worker i sends to Targets[i % len(Targets)].
type ClosedLoop struct {
	Targets  []Target
	Conns    int
	Duration time.Duration
	Client   ClientOptions
}

// Run runs the load and summarises it. It returns early, with what it has,
// when ctx ends.
func (c ClosedLoop) Run(ctx context.Context) Stats {
	ctx, cancel := context.WithTimeout(ctx, c.Duration)
	defer cancel()
	all := newRecorder()
	var mu sync.Mutex // protects all
	var wg sync.WaitGroup
	start := time.Now()
	for i := range max(1, c.Conns) {
		t := c.Targets[i%len(c.Targets)]
		opts := c.Client
		opts.MaxConns = 1
		tr := NewTransport(opts)
		client := &http.Client{Transport: tr, Timeout: opts.timeout()}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer tr.CloseIdleConnections()
			rec := newRecorder()
			for ctx.Err() == nil {
				code, lat, err := do(ctx, client, t)
				if err != nil && ctx.Err() != nil {
					break // cut off by the end of the run, not a failure
				}
				rec.add(code, lat, err)
			}
			mu.Lock()
			all.merge(rec)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all.stats("go closed-loop", time.Since(start))
}

// newRequest builds the request of t.
func newRequest(ctx context.Context, t Target) (*http.Request, error) {
	var body io.Reader
	if t.Body != nil {
		body = bytes.NewReader(t.Body)
	}
	req, err := http.NewRequestWithContext(ctx, t.Method, t.URL, body)
	if err != nil {
		return nil, err
	}
	for k, v := range t.Header {
		req.Header[k] = v
	}
	return req, nil
}

// do sends one request, reads the whole answer and times it.
func do(ctx context.Context, client *http.Client, t Target) (int, time.Duration, error) {
	req, err := newRequest(ctx, t)
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	res, err := client.Do(req)
	if err != nil {
		return 0, time.Since(start), err
	}
	_, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	lat := time.Since(start)
	if err != nil {
		return 0, lat, err
	}
	return res.StatusCode, lat, nil
}

// Do sends one request with client and returns the status, the answer's
// headers and its body.
func Do(ctx context.Context, client *http.Client, t Target) (int, http.Header, []byte, error) {
	req, err := newRequest(ctx, t)
	if err != nil {
		return 0, nil, nil, err
	}
	res, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, b, err
}
