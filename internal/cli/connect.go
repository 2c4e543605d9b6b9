package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/datadir"
)

// Environment variables the CLI reads.
const (
	envServer = "PLUMBLINE_SERVER"
	envToken  = "PLUMBLINE_TOKEN"
	envCACert = "PLUMBLINE_CA_CERT"
)

func (g *globals) dataDirPath() string {
	if g.dataDir != "" {
		return g.dataDir
	}
	return datadir.Default()
}

// useWorkspace applies the server profile that -w (or the config's
// default) names: its server, CA and token file, or its data dir, where
// the flags and environment do not set them. -g and --subscription are
// Azure's and ignored; a note says so. It runs once; later calls return
// the token file it found for a remote profile ("" otherwise).
func (g *globals) useWorkspace() (tokenFile string, err error) {
	if g.wsDone {
		return g.tokenFile, nil
	}
	g.wsDone = true
	var ignored []string
	if g.resourceGroup != "" {
		ignored = append(ignored, "--resource-group "+g.resourceGroup)
	}
	if g.subscription != "" {
		ignored = append(ignored, "--subscription "+g.subscription)
	}
	cfg, err := loadConfig()
	if err != nil {
		return "", err
	}
	name := g.workspace
	if name == "" {
		name = cfg.Defaults.Workspace
	}
	var p profile
	switch _, ok := cfg.Workspaces[name]; {
	case name == "":
	case ok:
		p = cfg.Workspaces[name]
		g.infof("using workspace %s from %s", name, cfg.path)
	case len(cfg.Workspaces) == 0:
		ignored = append(ignored, "--workspace-name "+name+" (no workspaces in "+cfg.path+")")
	default:
		return "", usageErrorf("--workspace-name %s: no such workspace in %s; it has %s", name, cfg.path, cfg.names())
	}
	if len(ignored) > 0 {
		fmt.Fprintf(g.stderr, "note: plumbline ignores Azure's %s\n", strings.Join(ignored, ", "))
	}
	if p.Server != "" && g.server == "" && os.Getenv(envServer) == "" {
		g.server = p.Server
		g.tokenFile = p.TokenFile
	}
	if p.CACert != "" && g.caCert == "" && os.Getenv(envCACert) == "" {
		g.caCert = expandHome(p.CACert)
	}
	if p.DataDir != "" && g.dataDir == "" {
		g.dataDir = expandHome(p.DataDir)
	}
	return g.tokenFile, nil
}

// infof prints a line with --verbose or --debug.
func (g *globals) infof(format string, args ...any) {
	if g.verbose || g.debug {
		fmt.Fprintf(g.errw, "INFO: "+format+"\n", args...)
	}
}

// conn is what a command needs to talk to a server.
type conn struct {
	api *api.Client
	// http trusts the server's CA; used for scoring calls too.
	http *http.Client
	// scoringBase is the gateway's base URL as the server announced it.
	scoringBase string
}

// connect finds the server (flag, env, or the local data dir's server.json),
// the admin token (env or the data dir) and the CA to trust.
func (g *globals) connect() (*conn, error) {
	tokenFile, err := g.useWorkspace()
	if err != nil {
		return nil, err
	}
	dd := &datadir.Dir{Root: g.dataDirPath()}
	server := firstNonEmpty(g.server, os.Getenv(envServer))
	remote := server != ""
	caPath := firstNonEmpty(g.caCert, os.Getenv(envCACert))
	var scoring string
	if server == "" {
		st, err := dd.ReadServerState()
		if err != nil {
			if datadir.IsNotExist(err) {
				return nil, fmt.Errorf("no plumbline server is running for data dir %s: start one with 'plumbline serve' (or pass --server / set %s)", dd.Root, envServer)
			}
			return nil, err
		}
		server, scoring = st.URL, st.ScoringURL
		if caPath == "" {
			caPath = st.CACert
		}
	}
	if caPath == "" {
		if _, err := os.Stat(dd.CACertPath()); err == nil {
			caPath = dd.CACertPath()
		}
	}
	token := os.Getenv(envToken)
	if token == "" && tokenFile != "" {
		if token, err = readTokenFile(tokenFile); err != nil {
			return nil, err
		}
	}
	if token == "" && !remote {
		// The data dir's token is only ever sent to the server that data
		// dir's server.json names, never to a --server given by hand.
		b, err := os.ReadFile(dd.AdminTokenPath())
		if err != nil && !datadir.IsNotExist(err) {
			return nil, fmt.Errorf("read admin token: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		if remote {
			return nil, fmt.Errorf("no admin token for %s: set %s to that server's admin token", server, envToken)
		}
		return nil, fmt.Errorf("no admin token: set %s, or run the CLI as the user who runs 'plumbline serve' (it reads %s)", envToken, dd.AdminTokenPath())
	}
	hc, err := httpClient(caPath)
	if err != nil {
		return nil, err
	}
	g.infof("server %s (CA %s)", server, firstNonEmpty(caPath, "the system's roots"))
	if g.debug {
		hc.Transport = &debugTransport{next: hc.Transport, w: g.errw}
	}
	c, err := api.NewClient(server, token, hc)
	if err != nil {
		return nil, err
	}
	c.UserAgent = "plumbline-cli/" + Version
	if scoring == "" {
		scoring = server
	}
	return &conn{api: c, http: hc, scoringBase: scoring}, nil
}

// debugTransport prints one line per request for --debug: method, URL,
// status and time. Headers (the token) and bodies are never printed.
type debugTransport struct {
	next http.RoundTripper
	w    io.Writer
}

func (t *debugTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		fmt.Fprintf(t.w, "DEBUG: %s %s: %v (%s)\n", r.Method, r.URL.Redacted(), err, time.Since(start).Round(time.Millisecond))
		return nil, err
	}
	fmt.Fprintf(t.w, "DEBUG: %s %s -> %s (%s)\n", r.Method, r.URL.Redacted(), resp.Status, time.Since(start).Round(time.Millisecond))
	return resp, nil
}

// httpClient trusts the system roots plus caPath (if given).
func httpClient(caPath string) (*http.Client, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if caPath != "" {
		pem, err := os.ReadFile(caPath)
		if err != nil {
			return nil, fmt.Errorf("CA certificate: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA certificate %s: no PEM certificate found", caPath)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	tr.Proxy = nil
	return &http.Client{Transport: tr, Timeout: 0}, nil
}

// explainConnErr turns "connection refused" into advice.
func explainConnErr(err error, server string) error {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("cannot reach the plumbline server at %s (connection refused): is 'plumbline serve' running?", server)
	}
	return err
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// pollInterval is how often long operations are polled.
const pollInterval = 250 * time.Millisecond
