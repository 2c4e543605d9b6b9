// Package server assembles `plumbline serve` from parts chosen by its
// configuration: the store (SQLite in the data dir, or a shared
// PostgreSQL), the control plane (API, registry, and — while this replica
// holds the leader lease — the driver and the reconciler), the gateway
// (fed by a RouteSource on the store), TLS, behind one HTTPS listener. Each
// part is Start(ctx) and runs until the context ends.
//
// It is the only package that knows every part; it holds no logic of its
// own beyond wiring, the routing-table builder, leader election and
// graceful shutdown.
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
	"github.com/plumbline/plumbline/internal/autoscale"
	"github.com/plumbline/plumbline/internal/connlimit"
	"github.com/plumbline/plumbline/internal/datadir"
	"github.com/plumbline/plumbline/internal/gateway"
	"github.com/plumbline/plumbline/internal/gateway/h1"
	"github.com/plumbline/plumbline/internal/gcpace"
	"github.com/plumbline/plumbline/internal/health"
	"github.com/plumbline/plumbline/internal/registry"
	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/secrets"
	"github.com/plumbline/plumbline/internal/store"
	"github.com/plumbline/plumbline/internal/tlsca"
	"github.com/plumbline/plumbline/internal/ui"
)

// Roles a replica can play (serve --role).
const (
	// RoleAll runs everything in one process: API, reconciler, gateway.
	RoleAll = "all"
	// RoleControl runs the API and campaigns to be the one replica that
	// reconciles; it serves no scoring traffic.
	RoleControl = "control"
	// RoleGateway serves scoring traffic only; it needs no driver.
	RoleGateway = "gateway"
)

// What a graceful stop does with the instances (serve --on-exit).
const (
	// OnExitKeep leaves them running for the next start to re-adopt: a
	// restart of plumbline costs no R start-up.
	OnExitKeep = "keep"
	// OnExitStop stops them (a full shutdown).
	OnExitStop = "stop"
)

// Config is `plumbline serve`'s configuration. Zero values take the
// documented defaults.
type Config struct {
	// DataDir holds everything the server keeps (default datadir.Default()).
	DataDir string
	// Role is RoleAll (zero), RoleControl or RoleGateway.
	Role string
	// Store is where the state lives: "" for SQLite in the data dir, or a
	// PostgreSQL URL (postgres://…), which several replicas can share.
	Store string
	// OnExit is what a graceful stop does with running instances:
	// OnExitKeep (zero) or OnExitStop.
	OnExit string
	// ReplicaID names this replica in the leader lease and in gateway
	// reports. Zero: "local" on SQLite (one server per data dir), else
	// <hostname>-<pid>.
	ReplicaID string
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
	// InstanceUser is the user the process driver's instances run as when
	// the server runs as root ("": plumbline-instance, created if missing;
	// "root": no isolation).
	InstanceUser string
	// SecretsKeyFile is the key endpoint keys and the token signing key are
	// encrypted with in the store (default <data dir>/secrets.key, created
	// at first start). Servers sharing a store must share it (replicas that
	// share a data dir do).
	SecretsKeyFile string
	// Kubernetes configures --driver kubernetes and --routes endpointslices.
	Kubernetes KubernetesConfig
	// Routes is where the gateway learns its ready instances: RoutesStore
	// ("" too) or RoutesEndpointSlices.
	Routes string
	// Logger is the server log; AccessLog receives one line per scoring
	// request (nil: Logger).
	Logger    *slog.Logger
	AccessLog *slog.Logger
	// AccessLogTo, if set, receives the access log instead: the same lines
	// (JSON with AccessLogJSON, else text), written in batches off the
	// request path by gateway.AccessLog.
	AccessLogTo   io.Writer
	AccessLogJSON bool
	// HTTP1 is how HTTP/1.1 scoring requests on plain HTTP are served:
	// HTTP1Std ("" too) by net/http's server, HTTP1Fast by the gateway's
	// own connection loop (internal/gateway/h1; docs/gateway.md). Other
	// requests and TLS connections always go to net/http's server.
	HTTP1 string
	// Ready, if set, is called once the server listens, with its base URL.
	Ready func(baseURL string)
}

// HTTP/1.1 serving modes (Config.HTTP1).
const (
	HTTP1Std  = "std"
	HTTP1Fast = "fast"
)

// withDefaults fills zero fields and checks the rest.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.DataDir == "" {
		cfg.DataDir = datadir.Default()
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:8443"
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "localhost"
	}
	if cfg.Role == "" {
		cfg.Role = RoleAll
	}
	if cfg.OnExit == "" {
		cfg.OnExit = OnExitKeep
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.AccessLog == nil {
		cfg.AccessLog = cfg.Logger
	}
	if cfg.ReplicaID == "" && !isPostgres(cfg.Store) {
		// SQLite: one server per data dir (a lock says so), so a restarted
		// server is the same replica and takes the leader lease back at
		// once instead of waiting for the dead one's to expire.
		cfg.ReplicaID = "local"
	}
	if cfg.ReplicaID == "" {
		host, _ := os.Hostname()
		cfg.ReplicaID = host + "-" + strconv.Itoa(os.Getpid())
	}
	switch cfg.Role {
	case RoleAll, RoleControl, RoleGateway:
	default:
		return cfg, fmt.Errorf("--role %q: want all, control or gateway", cfg.Role)
	}
	switch cfg.OnExit {
	case OnExitKeep, OnExitStop:
	default:
		return cfg, fmt.Errorf("--on-exit %q: want keep (leave instances running for the next start to re-adopt) or stop", cfg.OnExit)
	}
	switch cfg.HTTP1 {
	case "", HTTP1Std:
		cfg.HTTP1 = HTTP1Std
	case HTTP1Fast:
	default:
		return cfg, fmt.Errorf("--http1 %q: want std (net/http's server) or fast (the gateway's own loop for scoring requests on plain HTTP)", cfg.HTTP1)
	}
	switch cfg.Routes {
	case "", RoutesStore:
		cfg.Routes = RoutesStore
	case RoutesEndpointSlices:
		if cfg.Role == RoleControl {
			return cfg, fmt.Errorf("--routes endpointslices is where a gateway learns its instances; --role control runs no gateway")
		}
		if cfg.Kubernetes.Namespace == "" {
			return cfg, fmt.Errorf("--routes endpointslices needs --k8s-namespace: the namespace of the online deployments' Services")
		}
	default:
		return cfg, fmt.Errorf("--routes %q: want store (the shared store's instance rows) or endpointslices (the Kubernetes EndpointSlices of --k8s-namespace)", cfg.Routes)
	}
	if cfg.Role != RoleAll && !isPostgres(cfg.Store) {
		return cfg, fmt.Errorf("--role %s shares state with other replicas: give it a PostgreSQL store with --store postgres://… (SQLite serves one process, --role all)", cfg.Role)
	}
	return cfg, nil
}

// Run serves until ctx ends, then drains: it stops accepting, lets
// in-flight requests finish (up to 30 s), and, with OnExit stop, stops the
// instances it runs; it closes the store.
func Run(ctx context.Context, cfg Config) (err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return err
	}
	log := cfg.Logger.With("role", cfg.Role)

	dd, err := datadir.Open(cfg.DataDir)
	if err != nil {
		return err
	}
	if !isPostgres(cfg.Store) {
		// SQLite: one server per data dir.
		unlock, err := lockDataDir(dd)
		if err != nil {
			return err
		}
		defer unlock()
	}
	db, err := openStore(ctx, cfg.Store, dd, log)
	if err != nil {
		return err
	}
	defer db.Close()
	st, err := sealStore(ctx, cfg, db, dd, log)
	if err != nil {
		return err
	}

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
	promReg := prometheus.NewRegistry()
	promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	tlsCfg, reloader, caPath, err := serverTLS(cfg, dd)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another plumbline serve running? choose another address with --listen)", cfg.Listen, err)
	}
	scheme := "https"
	if tlsCfg == nil {
		scheme = "http"
	}
	// Bounded connections, TLS handshakes and silent clients (connlimit).
	guard, err := connlimit.New(ln, connlimit.Config{TLS: tlsCfg, Registerer: promReg, Logger: log})
	if err != nil {
		_ = ln.Close()
		return err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	base := scheme + "://" + cfg.Hostname + ":" + strconv.Itoa(port)
	apiBase := scheme + "://" + apiHost(cfg, ln) + ":" + strconv.Itoa(port)

	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var parts []part
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.Handle("GET /metrics", adminOnly(adminToken, promhttp.HandlerFor(promReg, promhttp.HandlerOpts{Registry: promReg})))

	// The data plane.
	var gw *gateway.Gateway
	var src *storeSource
	var feed routeFeed // src, or src with EndpointSlices' instances
	var alog *gateway.AccessLog
	var safe *safetyParts
	if cfg.Role != RoleControl {
		if alog, err = accessLog(cfg); err != nil {
			return err
		}
		if safe, err = newSafetyParts(ctx, cfg, dd, st, promReg, log); err != nil {
			return err
		}
		defer safe.close()
		gw, src, err = newGatewayPart(ctx, cfg, st, tokens, promReg, alog, ln.Addr().String(), safe)
		if err != nil {
			return err
		}
		feed = src
		if cfg.Routes == RoutesEndpointSlices {
			if feed, err = newSliceSource(runCtx, cfg, src, log); err != nil {
				return err
			}
		}
		parts = append(parts, part{"gateway figures", safe.figureWriter(gw, st, log).Start})
		// The first table before the listener opens: a gateway that just
		// started never answers 404 for an endpoint it has not read yet.
		if err := feed.sync(ctx, gw); err != nil {
			return fmt.Errorf("read the routing table: %w", err)
		}
		parts = append(parts, part{"gateway routes", func(ctx context.Context) error { return gw.Follow(ctx, feed, log.With("component", "gateway")) }})
		mux.Handle("/", gw)
	} else {
		mux.Handle("/", notHere("this plumbline replica runs --role control: send scoring requests to a gateway replica"))
	}
	syncRoutes := func() {
		if gw == nil {
			return
		}
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		if err := feed.sync(sctx, gw); err != nil {
			log.Error("rebuild routing table", "err", err)
		}
	}

	// Recent per-deployment figures, from this process's gateway metrics
	// (a control-only replica has none to show).
	var sampler *health.Sampler
	if gw != nil {
		sampler = health.New(promReg, health.Config{Logger: log.With("component", "health")})
		parts = append(parts, part{"health", sampler.Start})
	}

	// The control plane.
	var ctl *control
	var apis *apiserver.Server
	if cfg.Role != RoleGateway {
		ctl, err = newControl(ctx, cfg, dd, st, gw, src, syncRoutes, runCtx, log)
		if err != nil {
			return err
		}
		if safe != nil {
			ctl.rolloutWake = safe.wake
		}
		defer ctl.Close()
		if ctl.scaleMetrics, err = autoscale.NewMetrics(promReg); err != nil {
			return err
		}
		if src != nil {
			src.onCold = ctl.kickAutoscaler // a request waits at zero: decide now
		}
		var fetch *auth.ArtifactTokens // plumbline fetch in Kubernetes pods
		if cfg.Driver == "kubernetes" {
			if fetch, err = fetchTokens(secret); err != nil {
				return err
			}
		}
		apis = apiserver.New(apiserver.Config{
			Store:          st,
			Registry:       ctl.reg,
			Runtime:        ctl,
			Tokens:         tokenAdapter{tokens},
			AdminToken:     adminToken,
			ScoringBaseURL: base,
			Info: api.ServerInfo{
				Version: Version, ScoringBaseURL: base, CACertPath: caPath, Driver: ctl.driverName(), DataDir: dd.Root,
			},
			OnChange:     syncRoutes,
			Images:       imageService(ctl.images),
			CLI:          cliPath(),
			CLIArgs:      cliArgs(dd),
			UploadLimits: cfg.Uploads,
			Fetch:        fetch,
			ModelChecker: &resolve.RChecker{Rscript: cfg.Rscript, Artifacts: ctl.reg, Sandbox: ctl.runAs.Sandbox},
			Health:       healthOf(sampler),
			Resolver:     &resolve.Resolver{Rscript: cfg.Rscript, Python: cfg.Python, Containers: ctl.images != nil || cfg.Driver == "kubernetes", Sandbox: ctl.runAs.Sandbox, ErrorDetail: errorDetail(cfg)},
			CaptureDir:   captureDir(dd),
			Replayer:     replayer(gw),
			Logger:       log.With("component", "api"),
		})
		parts = append(parts, part{"control", ctl.Start})
		mux.Handle("/api/", apis)
		mux.Handle(ui.Prefix, ui.Handler()) // the studio; the mux redirects /studio to /studio/
	} else {
		mux.Handle("/api/", notHere("this plumbline replica runs --role gateway: send API requests to a control replica"))
	}
	if reloader != nil {
		parts = append(parts, part{"tls reloader", reloader.Start})
	}

	dr := newDrainer()
	srv := &http.Server{
		Handler:           dr.handler(mux),
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	if apis != nil {
		srv.RegisterOnShutdown(apis.CloseStreams)
	}
	guard.Configure(srv)
	dr.configure(srv)

	// Fewer garbage collections under load (docs/gateway.md, "Garbage
	// collection"): from here on, once start-up's garbage is gone.
	gcpace.Start(runCtx, gcpace.DefaultHeadroom)

	var wg sync.WaitGroup
	errc := make(chan error, len(parts)+1)
	for _, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.start(runCtx); err != nil {
				errc <- fmt.Errorf("%s: %w", p.name, err)
			}
		}()
	}
	var served net.Listener = guard
	var fast *h1.Listener
	if cfg.HTTP1 == HTTP1Fast && gw != nil {
		fast = h1.NewListener(guard, srv, gw.Scoring)
		served = fast
		promReg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "plumbline_http1_loop_requests_total",
				Help: "HTTP/1.1 scoring requests served by the gateway's own loop (serve --http1 fast)."},
				func() float64 { return float64(fast.Served()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "plumbline_http1_loop_handovers_total",
				Help: "Connections the gateway's own loop handed to net/http's server: TLS, or a request it does not serve (serve --http1 fast)."},
				func() float64 { return float64(fast.HandedOver()) }))
	}
	go func() {
		if err := srv.Serve(served); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()

	if cfg.Role != RoleGateway {
		if err := dd.WriteServerState(datadir.ServerState{
			URL: apiBase, ScoringURL: base, PID: os.Getpid(), StartedAt: time.Now().UTC(), CACert: caPath, Insecure: cfg.Insecure,
		}); err != nil {
			return err
		}
		defer dd.RemoveServerState(os.Getpid())
	}
	log.Info("plumbline is serving", "url", base, "api", apiBase+"/api/v1", "data_dir", dd.Root, "ca_cert", caPath,
		"store", storeName(cfg.Store), "replica", cfg.ReplicaID)
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
	// Stop accepting, answer what reached kept-alive connections (with
	// Connection: close), then close the rest and wait for what is in
	// flight.
	_ = guard.Close()
	dctx, dcancel := context.WithTimeout(sctx, 5*time.Second)
	dr.drain(dctx)
	dcancel()
	_ = srv.Shutdown(sctx)
	if fast != nil {
		_ = fast.Shutdown(sctx) // the loop's requests in flight
	}
	if gw != nil {
		_ = gw.Shutdown(sctx) // mirrored copies in flight finish before instances stop
	}
	if alog != nil {
		_ = alog.Close()
	}
	cancel()
	wg.Wait()
	if src != nil {
		dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = st.DeleteGatewayReport(dctx, src.id)
		dcancel()
	}
	log.Info("plumbline stopped")
	return err
}

// part is one long-running piece of the server.
type part struct {
	name  string
	start func(context.Context) error
}

// newGatewayPart builds the scoring gateway and its route source.
func newGatewayPart(ctx context.Context, cfg Config, st store.Store, tokens *auth.TokenIssuer, reg prometheus.Registerer, alog *gateway.AccessLog, addr string, safe *safetyParts) (*gateway.Gateway, *storeSource, error) {
	var oidc gateway.OIDCVerifier
	if cfg.OIDCIssuer != "" {
		v, err := auth.NewOIDCVerifier(ctx, cfg.OIDCIssuer, cfg.OIDCAudience)
		if err != nil {
			return nil, nil, fmt.Errorf("aad_token (OIDC issuer %s): %w", cfg.OIDCIssuer, err)
		}
		oidc = v
	}
	domains := append([]string{"localhost"}, cfg.ExtraNames...)
	if cfg.Hostname != "localhost" {
		domains = append(domains, cfg.Hostname)
	}
	gw, err := gateway.New(gateway.Config{
		Domains:      domains,
		MaxBodyBytes: cfg.MaxBodyBytes,
		Tokens:       tokens,
		OIDC:         oidc,
		Registerer:   reg,
		Logger:       cfg.AccessLog,
		AccessLog:    alog,
		Capture:      safe.sink,
		HashKey:      safe.hashKey,
	})
	if err != nil {
		return nil, nil, err
	}
	return gw, &storeSource{st: st, id: cfg.ReplicaID, addr: addr}, nil
}

// serverTLS returns the listener's TLS configuration (nil for plain HTTP),
// the reloader of a user certificate, and the local CA's path.
func serverTLS(cfg Config, dd *datadir.Dir) (*tls.Config, *tlsca.Reloader, string, error) {
	switch {
	case cfg.Insecure:
		return nil, nil, "", nil
	case cfg.TLSCert != "" || cfg.TLSKey != "":
		if cfg.TLSCert == "" || cfg.TLSKey == "" {
			return nil, nil, "", errors.New("--tls-cert and --tls-key go together")
		}
		reloader, err := tlsca.NewReloader(cfg.TLSCert, cfg.TLSKey, 10*time.Second)
		if err != nil {
			return nil, nil, "", err
		}
		return tlsca.ServerTLSConfig(reloader.GetCertificate), reloader, "", nil
	default:
		names := append([]string{cfg.Hostname}, cfg.ExtraNames...)
		if host, _, err := net.SplitHostPort(cfg.Listen); err == nil && net.ParseIP(host) != nil && !net.ParseIP(host).IsUnspecified() {
			names = append(names, host) // the API is reached at the listen address
		}
		ca, err := tlsca.Ensure(dd.TLSDir(), names)
		if err != nil {
			return nil, nil, "", fmt.Errorf("local CA: %w", err)
		}
		return tlsca.ServerTLSConfig(ca.GetCertificate), nil, ca.CertPath(), nil
	}
}

// notHere answers every request with 421 and a JSON reason naming the
// replica's role.
func notHere(msg string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusMisdirectedRequest)
		fmt.Fprintf(w, `{"error":{"code":"WrongReplica","message":%q}}`+"\n", msg)
	})
}

// accessLog is the batched access log when cfg asks for one.
func accessLog(cfg Config) (*gateway.AccessLog, error) {
	if cfg.AccessLogTo == nil {
		return nil, nil
	}
	format := gateway.AccessLogText
	if cfg.AccessLogJSON {
		format = gateway.AccessLogJSON
	}
	return gateway.NewAccessLog(cfg.AccessLogTo, format)
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

// sealStore wraps the store so endpoint keys and the token signing key are
// encrypted at rest, sealing what an earlier plumbline stored in the clear.
// Replicas sharing a PostgreSQL store share the key: in their shared data
// dir, or given to each with --secrets-key-file.
func sealStore(ctx context.Context, cfg Config, st store.Store, dd *datadir.Dir, log *slog.Logger) (store.Store, error) {
	keyFile := cfg.SecretsKeyFile
	if keyFile == "" {
		keyFile = dd.SecretsKeyPath()
	}
	key, err := secrets.LoadOrCreate(ctx, keyFile, st)
	if err != nil {
		return nil, err
	}
	sealed := secrets.Wrap(st, key)
	n, err := sealed.SealExisting(ctx)
	if err != nil {
		return nil, fmt.Errorf("seal the store's secrets with %s: %w", keyFile, err)
	}
	if n > 0 {
		log.Info("encrypted endpoint keys stored in the clear by an earlier plumbline", "values", n, "secrets_key", keyFile)
	}
	return sealed.Full(), nil
}

// removePartial removes what writes interrupted by a crash left (the data
// dir's lock is held: no other process writes there).
func removePartial(reg *registry.Registry, log *slog.Logger) {
	n, size, err := reg.RemovePartial()
	if err != nil {
		log.Warn("remove leftovers of interrupted writes", "err", err)
	}
	if n > 0 {
		log.Info("removed leftovers of interrupted writes (a crash during an upload)", "files", n, "bytes", size)
	}
}

// tokenSecret is the aml_token signing key, created once and kept in the
// store.
func tokenSecret(ctx context.Context, st store.Store) ([]byte, error) {
	return storedSecret(ctx, st, "aml_token_signing_key")
}

// storedSecret is the 32-byte secret kept in the store's setting key,
// created on first use.
func storedSecret(ctx context.Context, st store.Store, key string) ([]byte, error) {
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

// tokenAdapter presents the token issuer to the API.
type tokenAdapter struct{ t *auth.TokenIssuer }

func (a tokenAdapter) IssueEndpointToken(sub auth.Subject, now time.Time) (api.Token, error) {
	tok, err := a.t.IssueFor(sub, now)
	if err != nil {
		return api.Token{}, err
	}
	return api.Token{AccessToken: tok.AccessToken, TokenType: "Bearer", ExpiryTimeUtc: tok.ExpiryTimeUtc, RefreshAfterTimeUtc: tok.RefreshAfterTimeUtc}, nil
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
