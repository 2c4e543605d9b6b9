package server

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"

	"github.com/plumbline/plumbline/internal/apiserver"
	"github.com/plumbline/plumbline/internal/datadir"
	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/driver/docker"
	"github.com/plumbline/plumbline/internal/driver/process"
	"github.com/plumbline/plumbline/internal/images"
	"github.com/plumbline/plumbline/internal/reconcile"
	"github.com/plumbline/plumbline/internal/registry"
	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/store"
)

// closingDriver is a driver the server closes when it stops.
type closingDriver interface {
	driver.Driver
	Close() error
}

// imageHooks is the container engine's image side, shared by the
// reconciler (builds before starts) and the API (image build, build logs).
type imageHooks struct {
	*images.Builder
	Notify func()
}

// newDriver builds the driver cfg.Driver names; for docker, also the image
// builder.
func newDriver(ctx context.Context, cfg Config, dd *datadir.Dir, reg *registry.Registry, st store.Store, log *slog.Logger) (closingDriver, *imageHooks, error) {
	switch cfg.Driver {
	case "", "process":
		if err := datadir.MkdirPrivate(dd.InstancesDir()); err != nil {
			return nil, nil, err
		}
		drv, err := process.New(process.Config{StateDir: dd.InstancesDir(), Rscript: cfg.Rscript, Logger: log.With("component", "driver")})
		if err != nil {
			return nil, nil, fmt.Errorf("process driver: %w", err)
		}
		return drv, nil, nil
	case "docker":
		owner, err := dd.ServerID()
		if err != nil {
			return nil, nil, err
		}
		drv, err := docker.New(ctx, docker.Config{Host: cfg.DockerHost, Owner: owner, Logger: log.With("component", "driver")})
		if err != nil {
			return nil, nil, err
		}
		hooks := &imageHooks{}
		hooks.Builder = images.New(images.Config{
			Engine: drv, Artifacts: reg, ContextTar: docker.ContextTar, Store: st,
			LogDir: filepath.Join(dd.Root, "builds"),
			Notify: func() {
				if hooks.Notify != nil {
					hooks.Notify()
				}
			},
			Logger: log.With("component", "images"),
		})
		log.Info("docker driver", "engine", drv.Host(), "owner", owner)
		return drv, hooks, nil
	}
	return nil, nil, fmt.Errorf("--driver %q: want process or docker", cfg.Driver)
}

// checker is the pre-start check: R on this machine for the process
// driver; none for containers (the image brings its own R).
func checker(cfg Config, reg *registry.Registry, hooks *imageHooks, sandbox func(*exec.Cmd)) reconcile.Checker {
	if hooks != nil {
		return nil
	}
	return &resolve.RChecker{Rscript: cfg.Rscript, Artifacts: reg, Sandbox: sandbox}
}

func preparer(hooks *imageHooks) reconcile.Preparer {
	if hooks == nil {
		return nil
	}
	return hooks.Builder
}

func imageService(hooks *imageHooks) apiserver.ImageService {
	if hooks == nil {
		return nil
	}
	return hooks.Builder
}
