package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/internal/registry"
)

// fetchPath is apiserver.FetchPath (the CLI does not import the server).
const fetchPath = "/api/v1/fetch/"

func newFetchCmd(g *globals) *cobra.Command {
	var tokenFile string
	var attempts int
	c := &cobra.Command{
		Use:   "fetch --server URL --token-file FILE DIGEST=DIR...",
		Short: "Download artifacts into folders and verify their digests (a Kubernetes pod's storage initializer)",
		Long: `Download each artifact (a model version's or a code snapshot's files, named by its sha256
digest) from the control plane into DIR, then check that what was written hashes to the digest.
It authenticates with a token that allows exactly those artifacts (the Kubernetes driver puts one
in each deployment's Secret), not the admin token. Network failures are retried; a digest that
does not match fails at once.`,
		Example: "  plumbline fetch --server https://plumbline-control:8443 --ca-cert /s/ca.crt --token-file /s/token \\\n    sha256:3f2a…=/plumbline/model sha256:9b1c…=/plumbline/code",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if g.server == "" {
				return usageErrorf("fetch needs --server: the control plane's URL as this machine reaches it")
			}
			u, err := url.Parse(g.server)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return usageErrorf("--server %q: want https://host:port", g.server)
			}
			if tokenFile == "" {
				return usageErrorf("fetch needs --token-file: the file holding the artifact token")
			}
			tok, err := os.ReadFile(tokenFile)
			if err != nil {
				return fmt.Errorf("read the artifact token: %w", err)
			}
			type job struct{ digest, dir string }
			var jobs []job
			for _, a := range args {
				d, dir, ok := strings.Cut(a, "=")
				if !ok || !strings.HasPrefix(d, "sha256:") || len(d) != len("sha256:")+64 || dir == "" {
					return usageErrorf("%q: want sha256:<64 hex>=DIR", a)
				}
				jobs = append(jobs, job{d, dir})
			}
			hc, err := fetchClient(g.caCert)
			if err != nil {
				return err
			}
			for _, j := range jobs {
				begin := time.Now()
				fmt.Fprintf(g.stderr, "Fetching %s into %s\n", shortDigest(j.digest), j.dir)
				n, err := fetchOne(c.Context(), hc, strings.TrimRight(g.server, "/")+fetchPath+j.digest, strings.TrimSpace(string(tok)), j.digest, j.dir, attempts, g.stderr)
				if err != nil {
					return fmt.Errorf("fetch %s into %s: %w", j.digest, j.dir, err)
				}
				fmt.Fprintf(g.stderr, "Fetched %s into %s (%s, verified) in %s\n", shortDigest(j.digest), j.dir, humanBytes(n), time.Since(begin).Round(time.Millisecond))
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&tokenFile, "token-file", "", "file holding the artifact token")
	f.IntVar(&attempts, "attempts", 8, "tries per artifact when the server cannot be reached (backoff 0.5 s doubling, at most 8 s)")
	return c
}

// fetchClient trusts caFile (the control plane's CA) when given, else the
// system's roots.
func fetchClient(caFile string) (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read the CA certificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
		}
		tc.RootCAs = pool
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment}, Timeout: 30 * time.Minute}, nil
}

// errPermanent marks failures that retrying cannot fix.
type errPermanent struct{ error }

func (e errPermanent) Unwrap() error { return e.error }

// fetchOne downloads one artifact into dir and verifies it, retrying
// network failures; it returns the size written.
func fetchOne(ctx context.Context, hc *http.Client, url, token, digest, dir string, attempts int, log io.Writer) (int64, error) {
	wait := 500 * time.Millisecond
	var err error
	for i := 1; ; i++ {
		var n int64
		n, err = fetchTry(ctx, hc, url, token, digest, dir)
		if err == nil {
			return n, nil
		}
		var perm errPermanent
		if errors.As(err, &perm) || i >= attempts || ctx.Err() != nil {
			return 0, err
		}
		fmt.Fprintf(log, "  attempt %d: %v; retrying in %s\n", i, err, wait)
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 8*time.Second)
	}
}

func fetchTry(ctx context.Context, hc *http.Client, url, token, digest, dir string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return 0, errPermanent{err}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		var uerr x509.UnknownAuthorityError
		if errors.As(err, &uerr) {
			return 0, errPermanent{fmt.Errorf("%w (pass the control plane's CA with --ca-cert)", err)}
		}
		return 0, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return 0, fmt.Errorf("the server answered %s", resp.Status)
	default:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return 0, errPermanent{fmt.Errorf("the server answered %s: %s", resp.Status, strings.TrimSpace(string(b)))}
	}
	// Start from an empty folder: a retried attempt must not mix trees.
	if err := emptyDir(dir); err != nil {
		return 0, errPermanent{err}
	}
	cr := &countingReader{r: resp.Body}
	if err := registry.ExtractTar(ctx, cr, dir, registry.Limits{}); err != nil {
		return 0, err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, errPermanent{err}
	}
	if len(ents) != 1 {
		return 0, errPermanent{fmt.Errorf("the artifact unpacked into %d top-level entries, want its one root folder or file", len(ents))}
	}
	got, err := registry.LocalDigest(filepath.Join(dir, ents[0].Name()))
	if err != nil {
		return 0, errPermanent{err}
	}
	if got != digest {
		return 0, errPermanent{fmt.Errorf("what was downloaded hashes to %s, want %s: refusing it", got, digest)}
	}
	return cr.n, nil
}

// emptyDir removes dir's contents (not dir: it may be a mount point).
func emptyDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
