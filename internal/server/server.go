// Package server assembles `plumbline serve`: the data directory, the store,
// the registry, TLS, the driver, the reconciler, the gateway and the API,
// behind one HTTPS listener, and runs them until the context ends.
//
// It is the only package that knows every part; it holds no logic of its
// own beyond wiring, the routing-table builder and graceful shutdown.
package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/apiserver"
	"github.com/plumbline/plumbline/internal/auth"
	"github.com/plumbline/plumbline/internal/blob"
	"github.com/plumbline/plumbline/internal/datadir"
	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/gateway"
	"github.com/plumbline/plumbline/internal/health"
	"github.com/plumbline/plumbline/internal/reconcile"
	"github.com/plumbline/plumbline/internal/registry"
	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/smoke"
	"github.com/plumbline/plumbline/internal/store"
	"github.com/plumbline/plumbline/internal/store/sqlite"
	"github.com/plumbline/plumbline/internal/tlsca"
	"github.com/plumbline/plumbline/internal/ui"
)

// Config is `plumbline serve`'s configuration. Zero values take the
// documented defaults.
type Config struct {
	// DataDir holds everything the server keeps (default datadir.Default()).
	DataDir string
	// Listen is the address of the one HTTPS listener serving the API, the
	// gateway and metrics (default 127.0.0.1:8443).
	Listen string
	// Hostname is the name clients use in scoring URIs (default localhost).
	Hostname string
	// ExtraNames are added to the local certificate and to host-based routing
	// domains.
	ExtraNames []string
	// TLSCert and TLSKey are a certificate to serve instead of the local CA's
	// (reloaded when the files change).
	TLSCert, TLSKey string
	// Insecure serves plain HTTP (only when asked).
	Insecure bool
	// Rscript is the R front end (default "Rscript" on PATH).
	Rscript string
	// Driver runs instances: "process" (default) or "docker" (containers
	// through the Docker Engine API: Docker or Podman).
	Driver string
	// DockerHost is the Engine API address for the docker driver (""
	// means DOCKER_HOST, then unix:///var/run/docker.sock).
	DockerHost string
	// Python serves MLflow python_function models (default "python3").
	Python string
	// OIDCIssuer and OIDCAudience enable aad_token endpoints (extension).
	OIDCIssuer, OIDCAudience string
	// ErrorDetail is the default of deployments' plumbline.error_detail:
	// "on", "off", or "auto"/"" (on when Listen is a loopback address).
	ErrorDetail string
	// MaxBodyBytes bounds scoring request bodies (0: the gateway's default).
	MaxBodyBytes int64
	// Uploads bound one uploaded model or code folder (uncompressed bytes
	// and entries); zero fields take the registry's defaults (4 GiB,
	// 10 000 entries).
	Uploads registry.Limits
	// Logger is the server log; AccessLog receives one line per scoring
	// request (nil: Logger).
	Logger    *slog.Logger
	AccessLog *slog.Logger
	// Ready, if set, is called once the server listens, with its base URL.
	Ready func(baseURL string)
}

// Run serves until ctx ends, then drains: it stops accepting, lets
// in-flight requests finish (up to 30 s), stops the instances it runs and
// closes the store.
func Run(ctx context.Context, cfg Config) (err error) {
	if cfg.DataDir == "" {
		cfg.DataDir = datadir.Default()
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:8443"
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "localhost"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.AccessLog == nil {
		cfg.AccessLog = cfg.Logger
	}
	log := cfg.Logger

	dd, err := datadir.Open(cfg.DataDir)
	if err != nil {
		return err
	}
	unlock, err := lockDataDir(dd)
	if err != nil {
		return err
	}
	defer unlock()

	st, err := sqlite.Open(ctx, dd.DBPath())
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer st.Close()

	blobs, err := blob.New(dd.BlobsDir())
	if err != nil {
		return fmt.Errorf("open blob store: %w", err)
	}
	if err := datadir.MkdirPrivate(dd.CacheDir()); err != nil {
		return err
	}
	reg := registry.New(st, blobs, dd.CacheDir(), cfg.Uploads)

	adminToken, err := auth.LoadOrCreateAdminToken(dd.AdminTokenPath())
	if err != nil {
		return err
	}
	secret, err := tokenSecret(ctx, st)
	if err != nil {
		return err
	}
	tokens, err := auth.NewTokenIssuer(secret)
	if err != nil {
		return err
	}

	var oidc gateway.OIDCVerifier
	if cfg.OIDCIssuer != "" {
		v, err := auth.NewOIDCVerifier(ctx, cfg.OIDCIssuer, cfg.OIDCAudience)
		if err != nil {
			return fmt.Errorf("aad_token (OIDC issuer %s): %w", cfg.OIDCIssuer, err)
		}
		oidc = v
	}

	if err := datadir.MkdirPrivate(dd.InstancesDir()); err != nil {
		return err
	}
	drv, images, err := newDriver(ctx, cfg, dd, reg, st, log)
	if err != nil {
		return err
	}
	defer drv.Close()

	promReg := prometheus.NewRegistry()
	promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	domains := append([]string{"localhost"}, cfg.ExtraNames...)
	if cfg.Hostname != "localhost" {
		domains = append(domains, cfg.Hostname)
	}
	gw, err := gateway.New(gateway.Config{
		Domains:      domains,
		MaxBodyBytes: cfg.MaxBodyBytes,
		Tokens:       tokens,
		OIDC:         oidc,
		Registerer:   promReg,
		Logger:       cfg.AccessLog,
	})
	if err != nil {
		return err
	}

	rchecker := &resolve.RChecker{Rscript: cfg.Rscript, Artifacts: reg}
	sampler := health.New(promReg, health.Config{Logger: log.With("component", "health")})
	var rt *router
	rec := reconcile.New(reconcile.Config{
		Store:     st,
		Driver:    drv,
		Artifacts: reg,
		Checker:   checker(cfg, reg, images),
		Images:    preparer(images),
		Sample:    smoke.New(),
		Logger:    log.With("component", "reconciler"),
		// Synchronous: when an instance leaves the pool, the gateway stops
		// routing to it before the reconciler drains and stops it.
		OnChange: func() { rt.Sync() },
		InFlight: gw.InFlight,
	})
	rt = newRouter(st, rec, gw, log)
	if images != nil {
		images.Notify = rec.Notify
	}

	// TLS.
	scheme := "https"
	var tlsCfg *tls.Config
	var caPath string
	var reloader *tlsca.Reloader
	switch {
	case cfg.Insecure:
		scheme = "http"
	case cfg.TLSCert != "" || cfg.TLSKey != "":
		if cfg.TLSCert == "" || cfg.TLSKey == "" {
			return errors.New("--tls-cert and --tls-key go together")
		}
		reloader, err = tlsca.NewReloader(cfg.TLSCert, cfg.TLSKey, 10*time.Second)
		if err != nil {
			return err
		}
		tlsCfg = tlsca.ServerTLSConfig(reloader.GetCertificate)
	default:
		names := append([]string{cfg.Hostname}, cfg.ExtraNames...)
		if host, _, err := net.SplitHostPort(cfg.Listen); err == nil && net.ParseIP(host) != nil && !net.ParseIP(host).IsUnspecified() {
			names = append(names, host) // the API is reached at the listen address
		}
		ca, err := tlsca.Ensure(dd.TLSDir(), names)
		if err != nil {
			return fmt.Errorf("local CA: %w", err)
		}
		caPath = ca.CertPath()
		tlsCfg = tlsca.ServerTLSConfig(ca.GetCertificate)
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another plumbline serve running? choose another address with --listen)", cfg.Listen, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	base := scheme + "://" + cfg.Hostname + ":" + strconv.Itoa(port)
	apiBase := scheme + "://" + apiHost(cfg, ln) + ":" + strconv.Itoa(port)

	apis := apiserver.New(apiserver.Config{
		Store:          st,
		Registry:       reg,
		Runtime:        runtimeAdapter{rec},
		Tokens:         tokenAdapter{tokens},
		AdminToken:     adminToken,
		ScoringBaseURL: base,
		Info: api.ServerInfo{
			Version: Version, ScoringBaseURL: base, CACertPath: caPath, Driver: drv.Name(), DataDir: dd.Root,
		},
		OnChange:     rt.Sync,
		Images:       imageService(images),
		CLI:          cliPath(),
		CLIArgs:      cliArgs(dd),
		UploadLimits: cfg.Uploads,
		ModelChecker: rchecker,
		Health:       healthAdapter{sampler},
		Resolver:     &resolve.Resolver{Rscript: cfg.Rscript, Python: cfg.Python, Containers: images != nil, ErrorDetail: errorDetail(cfg)},
		Logger:       log.With("component", "api"),
	})

	mux := http.NewServeMux()
	mux.Handle("/api/", apis)
	mux.Handle("GET /metrics", adminOnly(adminToken, promhttp.HandlerFor(promReg, promhttp.HandlerOpts{Registry: promReg})))
	mux.Handle(ui.Prefix, ui.Handler()) // the studio; the mux redirects /studio to /studio/
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.Handle("/", gw)

	srv := &http.Server{
		Handler:           mux,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}

	srv.RegisterOnShutdown(apis.CloseStreams)

	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	start := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(runCtx); err != nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	start("reconciler", rec.Start)
	start("router", rt.Start)
	start("health", sampler.Start)
	if reloader != nil {
		start("tls reloader", reloader.Start)
	}
	go func() {
		var err error
		if tlsCfg != nil {
			err = srv.Serve(tls.NewListener(ln, tlsCfg))
		} else {
			err = srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()

	if err := dd.WriteServerState(datadir.ServerState{
		URL: apiBase, ScoringURL: base, PID: os.Getpid(), StartedAt: time.Now().UTC(), CACert: caPath, Insecure: cfg.Insecure,
	}); err != nil {
		return err
	}
	defer dd.RemoveServerState(os.Getpid())
	log.Info("plumbline is serving", "url", base, "api", apiBase+"/api/v1", "data_dir", dd.Root, "ca_cert", caPath, "driver", drv.Name())
	if cfg.Ready != nil {
		cfg.Ready(apiBase)
	}

	select {
	case <-ctx.Done():
	case err = <-errc:
		log.Error("plumbline stopping after an error", "err", err)
	}
	log.Info("draining: no new connections; waiting for requests in flight")
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	_ = gw.Shutdown(sctx) // mirrored copies in flight finish before instances stop
	cancel()
	wg.Wait()
	stopInstances(drv, log)
	log.Info("plumbline stopped")
	return err
}

// errorDetail decides the server's default for plumbline.error_detail: on
// for a server only this machine reaches (listening on a loopback address),
// off for one other machines reach, unless the configuration says.
func errorDetail(cfg Config) bool {
	switch strings.ToLower(cfg.ErrorDetail) {
	case "on", "true":
		return true
	case "off", "false":
		return false
	}
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// cliPath is the absolute path of this binary, the plumbline command that
// printed snippets name so they work whatever the caller's PATH.
func cliPath() string {
	exe, err := os.Executable()
	if err != nil {
		return "plumbline"
	}
	if p, err := filepath.EvalSymlinks(exe); err == nil {
		return p
	}
	return exe
}

// cliArgs are the flags the CLI needs to find this server: its data dir,
// unless it is the default one of a shell without PLUMBLINE_DATA_DIR.
func cliArgs(dd *datadir.Dir) []string {
	if def, err := filepath.Abs(datadir.Default()); err == nil && def == dd.Root && os.Getenv(datadir.EnvDataDir) == "" {
		return nil
	}
	return []string{"--data-dir", dd.Root}
}

// Version is the server version reported by the API.
var Version = "dev"

// apiHost is the host the CLI should use for the API: the listen address's
// host when it is specific and not the loopback, else localhost.
func apiHost(cfg Config, ln net.Listener) string {
	host, _, _ := net.SplitHostPort(cfg.Listen)
	if host == "" || host == "0.0.0.0" || host == "::" {
		return "localhost"
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return "localhost"
	}
	return host
}

// stopInstances stops every instance the driver runs, in parallel, on a
// graceful shutdown; the next start brings them back from the store.
func stopInstances(drv driver.Driver, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	list, err := drv.List(ctx)
	if err != nil {
		log.Error("list instances", "err", err)
		return
	}
	var wg sync.WaitGroup
	for _, st := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := drv.Stop(ctx, st.ID, 5*time.Second); err != nil {
				log.Error("stop instance", "instance", st.ID, "err", err)
			}
		}()
	}
	wg.Wait()
	if len(list) > 0 {
		log.Info("instances stopped", "count", len(list))
	}
}

// lockDataDir takes an exclusive lock so two servers never share a data
// dir. The kernel releases it when the process dies, even on kill -9.
func lockDataDir(dd *datadir.Dir) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dd.Root, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if st, e := dd.ReadServerState(); e == nil {
			return nil, fmt.Errorf("another plumbline server (pid %d, %s) is using data dir %s; stop it or pass another --data-dir", st.PID, st.URL, dd.Root)
		}
		return nil, fmt.Errorf("another plumbline server is using data dir %s: %w", dd.Root, err)
	}
	return func() { f.Close() }, nil
}

// tokenSecret is the aml_token signing key, created once and kept in the
// store.
func tokenSecret(ctx context.Context, st store.Store) ([]byte, error) {
	const key = "aml_token_signing_key"
	b, err := st.GetSetting(ctx, key)
	if err == nil && len(b) >= 32 {
		return b, nil
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return b, st.PutSetting(ctx, key, b)
}

// adminOnly guards a handler with the admin token.
func adminOnly(token string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !auth.AuthorizedBearer(r.Header.Get("Authorization"), token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="plumbline"`)
			http.Error(w, `{"error":{"code":"Unauthorized","message":"missing or invalid admin token"}}`, http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// runtimeAdapter presents the reconciler to the API.
type runtimeAdapter struct{ r *reconcile.Reconciler }

func (a runtimeAdapter) Notify() { a.r.Notify() }

func (a runtimeAdapter) Instances(endpoint, deployment string) []api.Instance {
	var out []api.Instance
	for _, in := range a.r.Instances(endpoint, deployment) {
		out = append(out, api.Instance{Name: in.Name, State: in.State, Ready: in.Ready, Restarts: in.Restarts, Started: in.Started, Message: in.Message})
	}
	return out
}

func (a runtimeAdapter) Logs(ctx context.Context, endpoint, deployment, instance string, lines int, follow bool, w io.Writer) error {
	return a.r.Logs(ctx, endpoint, deployment, instance, lines, follow, w)
}

// tokenAdapter presents the token issuer to the API.
type tokenAdapter struct{ t *auth.TokenIssuer }

func (a tokenAdapter) IssueEndpointToken(endpoint string, now time.Time) (api.Token, error) {
	tok, err := a.t.Issue(endpoint, now)
	if err != nil {
		return api.Token{}, err
	}
	return api.Token{AccessToken: tok.AccessToken, TokenType: "Bearer", ExpiryTimeUtc: tok.ExpiryTimeUtc, RefreshAfterTimeUtc: tok.RefreshAfterTimeUtc}, nil
}
