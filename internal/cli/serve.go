package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

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

With no flags it keeps its state in the data dir (~/.local/share/plumbline), listens on
https://localhost:8443 with a certificate from a local CA it creates (the CA file is printed),
and writes an admin token that the CLI on this machine picks up.

The first SIGINT/SIGTERM drains (in-flight requests finish, instances stop); a second one
exits at once.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			cfg.DataDir = g.dataDirPath()
			lvl := slog.LevelInfo
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return usageErrorf("--log-level %q: want debug, info, warn or error", logLevel)
			}
			var h slog.Handler
			switch strings.ToLower(logFormat) {
			case "text":
				h = slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: lvl})
			case "json":
				h = slog.NewJSONHandler(g.stderr, &slog.HandlerOptions{Level: lvl})
			default:
				return usageErrorf("--log-format %q: want text or json", logFormat)
			}
			switch strings.ToLower(cfg.ErrorDetail) {
			case "auto", "on", "off", "true", "false":
			default:
				return usageErrorf("--error-detail %q: want on, off or auto", cfg.ErrorDetail)
			}
			cfg.Logger = slog.New(h)
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
	f.StringVar(&cfg.Hostname, "hostname", "localhost", "host name clients use in scoring URIs (added to the local certificate)")
	f.StringSliceVar(&cfg.ExtraNames, "tls-name", nil, "extra names for the local certificate and host-based routing (repeatable)")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "serve this certificate (PEM) instead of the local CA's; reloaded when it changes")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "private key (PEM) for --tls-cert")
	f.BoolVar(&cfg.Insecure, "insecure-http", false, "serve plain HTTP (no TLS); only for local experiments")
	f.StringVar(&cfg.Rscript, "rscript", "", "Rscript to run R deployments (default: Rscript on PATH)")
	f.StringVar(&cfg.Driver, "driver", "process", "how instances run: process (local processes) or docker (containers through the Docker Engine API: Docker or Podman)")
	f.StringVar(&cfg.DockerHost, "docker-host", "", "Docker Engine API address for --driver docker, e.g. unix:///run/podman/podman.sock (default: $DOCKER_HOST, then unix:///var/run/docker.sock)")
	f.StringVar(&cfg.Python, "python", "", "Python that serves MLflow python_function models; it must be able to import mlflow (default: python3 on PATH)")
	f.StringVar(&cfg.OIDCIssuer, "oidc-issuer", "", "OpenID Connect issuer URL validating aad_token endpoints' JWTs")
	f.StringVar(&cfg.OIDCAudience, "oidc-audience", "", "audience required in aad_token JWTs")
	f.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", 0, "largest scoring request body accepted, in bytes (default 100 MiB)")
	f.Int64Var(&cfg.Uploads.MaxBytes, "max-upload-bytes", 0, "largest model or code folder accepted, uncompressed bytes (default 4 GiB)")
	f.IntVar(&cfg.Uploads.MaxFiles, "max-upload-files", 0, "most files and folders in one uploaded model or code folder (default 10000)")
	f.StringVar(&cfg.ErrorDetail, "error-detail", "auto", "default of deployments' plumbline.error_detail (R's error message in the caller's 424 body): on, off, or auto (on when listening on loopback only)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	return c
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
