package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/internal/server"
)

func newServeCmd(g *globals) *cobra.Command {
	var cfg server.Config
	var logLevel, logFormat string
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the plumbline server: API, scoring gateway and instances",
		Long: `Run the plumbline server in the foreground: the control-plane API, the HTTPS scoring
gateway and the reconciler that runs deployments as local processes.

With no flags it keeps its state in the data dir (~/.local/share/plumbline; /var/lib/plumbline as root), listens on
https://localhost:8443 with a certificate from a local CA it creates (the CA file is printed),
and writes an admin token that the CLI on this machine picks up.

Roles split the server across processes that share a PostgreSQL store (--store postgres://…,
or PLUMBLINE_STORE): --role control runs the API and, on the one replica that holds the leader
lease, the instances; --role gateway serves scoring requests only. --role all (the default)
runs everything in one process, on SQLite in the data dir unless --store says otherwise.

The first SIGINT/SIGTERM drains (in-flight requests finish) and, by default, leaves the
instances running: the next start re-adopts them, so a restart costs no R start-up
(--on-exit stop stops them instead). A second signal exits at once.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			cfg.DataDir = g.dataDirPath()
			if cfg.Store == "" {
				cfg.Store = os.Getenv("PLUMBLINE_STORE")
			}
			lvl := slog.LevelInfo
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return usageErrorf("--log-level %q: want debug, info, warn or error", logLevel)
			}
			var h slog.Handler
			out := &syncWriter{w: g.stderr} // the server log and the batched access log share it
			switch strings.ToLower(logFormat) {
			case "text":
				h = slog.NewTextHandler(out, &slog.HandlerOptions{Level: lvl})
			case "json":
				h = slog.NewJSONHandler(out, &slog.HandlerOptions{Level: lvl})
			default:
				return usageErrorf("--log-format %q: want text or json", logFormat)
			}
			switch strings.ToLower(cfg.ErrorDetail) {
			case "auto", "on", "off", "true", "false":
			default:
				return usageErrorf("--error-detail %q: want on, off or auto", cfg.ErrorDetail)
			}
			cfg.Logger = slog.New(h)
			if lvl <= slog.LevelInfo { // the access log is INFO lines
				cfg.AccessLogTo, cfg.AccessLogJSON = out, strings.EqualFold(logFormat, "json")
			}
			cfg.Ready = func(base string) {
				fmt.Fprintf(g.stderr, "plumbline %s is serving at %s (data dir %s)\n  studio: %s/studio/ (sign in with the token in %s)\n",
					Version, base, cfg.DataDir, base, filepath.Join(cfg.DataDir, "admin.token"))
			}
			server.Version = Version
			ctx, stop := signalContext(c.Context(), g)
			defer stop()
			return server.Run(ctx, cfg)
		},
	}
	f := c.Flags()
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:8443", "address to listen on (API, gateway and metrics)")
	f.StringVar(&cfg.Role, "role", server.RoleAll, "what this replica runs: all, control (API and, on the leader, the instances) or gateway (scoring only)")
	f.StringVar(&cfg.Store, "store", "", "shared state: a postgres:// URL (default: SQLite in the data dir; env PLUMBLINE_STORE)")
	f.StringVar(&cfg.OnExit, "on-exit", server.OnExitKeep, "what a graceful stop does with running instances: keep (the next start re-adopts them) or stop")
	f.StringVar(&cfg.ReplicaID, "replica-id", "", "this replica's name in the leader lease and gateway reports (default host-pid)")
	f.StringVar(&cfg.Hostname, "hostname", "localhost", "host name clients use in scoring URIs (added to the local certificate)")
	f.StringSliceVar(&cfg.ExtraNames, "tls-name", nil, "extra names for the local certificate and host-based routing (repeatable)")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "serve this certificate (PEM) instead of the local CA's; reloaded when it changes")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "private key (PEM) for --tls-cert")
	f.BoolVar(&cfg.Insecure, "insecure-http", false, "serve plain HTTP (no TLS); only for local experiments")
	f.StringVar(&cfg.Rscript, "rscript", "", "Rscript to run R deployments (default: Rscript on PATH)")
	f.StringVar(&cfg.Driver, "driver", "process", "how instances run: process (local processes), docker (containers through the Docker Engine API: Docker or Podman) or kubernetes (a Kubernetes Deployment per deployment)")
	f.StringVar(&cfg.DockerHost, "docker-host", "", "Docker Engine API address for --driver docker, e.g. unix:///run/podman/podman.sock (default: $DOCKER_HOST, then unix:///var/run/docker.sock)")
	f.StringVar(&cfg.Routes, "routes", "store", "where the gateway learns its ready instances: store (the shared store) or endpointslices (the EndpointSlices of --k8s-namespace, on Kubernetes)")
	f.StringVar(&cfg.Kubernetes.Kubeconfig, "kubeconfig", "", "kubeconfig for --driver kubernetes (default: the pod's service account, then $KUBECONFIG or ~/.kube/config)")
	f.StringVar(&cfg.Kubernetes.Namespace, "k8s-namespace", "", "namespace of the online deployments' Deployments, Services and Secrets (--driver kubernetes)")
	f.StringVar(&cfg.Kubernetes.FetchImage, "k8s-fetch-image", "", "plumbline image the pods' storage initializer runs (plumbline fetch) to download model and code")
	f.StringVar(&cfg.Kubernetes.FetchURL, "k8s-fetch-url", "", "this control plane's URL as pods reach it, for plumbline fetch")
	f.StringVar(&cfg.Kubernetes.FetchCA, "k8s-fetch-ca", "", "CA certificate pods trust for --k8s-fetch-url (default: the data dir's local CA)")
	f.StringVar(&cfg.Kubernetes.ImagePullPolicy, "k8s-image-pull-policy", "IfNotPresent", "pull policy of the pods' images: IfNotPresent, Always or Never")
	f.DurationVar(&cfg.Kubernetes.ProgressDeadline, "k8s-progress-deadline", 600*time.Second, "how long a Deployment may take to roll out before it is Failed")
	f.StringVar(&cfg.Python, "python", "", "Python that serves MLflow python_function models; it must be able to import mlflow (default: python3 on PATH)")
	f.StringVar(&cfg.InstanceUser, "instance-user", "", "when serve runs as root: the unprivileged user process-driver instances run as (default plumbline-instance, created if missing; root: no isolation)")
	f.StringVar(&cfg.SecretsKeyFile, "secrets-key-file", os.Getenv("PLUMBLINE_SECRETS_KEY_FILE"), "key that encrypts endpoint keys in the store (env PLUMBLINE_SECRETS_KEY_FILE; default <data dir>/secrets.key, created at first start); servers sharing a store need the same one")
	f.StringVar(&cfg.OIDCIssuer, "oidc-issuer", "", "OpenID Connect issuer URL validating aad_token endpoints' JWTs")
	f.StringVar(&cfg.OIDCAudience, "oidc-audience", "", "audience required in aad_token JWTs")
	f.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", 0, "largest scoring request body accepted, in bytes (default 100 MiB)")
	f.Int64Var(&cfg.Uploads.MaxBytes, "max-upload-bytes", 0, "largest model or code folder accepted, uncompressed bytes (default 4 GiB)")
	f.IntVar(&cfg.Uploads.MaxFiles, "max-upload-files", 0, "most files and folders in one uploaded model or code folder (default 10000)")
	f.StringVar(&cfg.ErrorDetail, "error-detail", "auto", "default of deployments' plumbline.error_detail (R's error message in the caller's 424 body): on, off, or auto (on when listening on loopback only)")
	f.StringVar(&cfg.HTTP1, "http1", server.HTTP1Std, "how HTTP/1.1 scoring requests on plain HTTP are served: std (net/http's server) or fast (the gateway's own connection loop; other requests and TLS always take net/http's server)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	return c
}

// syncWriter serialises writes to w.
type syncWriter struct {
	mu sync.Mutex // protects w
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// signalContext ends at the first SIGINT/SIGTERM; the second exits the
// process at once.
func signalContext(parent context.Context, g *globals) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		select {
		case s := <-ch:
			fmt.Fprintf(g.stderr, "received %s: draining (send it again to exit at once)\n", s)
			cancel()
		case <-ctx.Done():
			return
		}
		<-ch
		fmt.Fprintln(g.stderr, "exiting at once")
		os.Exit(ExitFailure)
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}
