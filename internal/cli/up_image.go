package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/spec"
)

// addUpDriverFlags adds up's --driver and --docker-host.
func addUpDriverFlags(f *pflag.FlagSet, driverName, dockerHost *string) {
	f.StringVar(driverName, "driver", "", "driver of the local server up starts: process (default) or docker (the deployment's image runs in a container; DIR/docker-context is built when the image is missing)")
	f.StringVar(dockerHost, "docker-host", "", "Docker Engine API address for --driver docker (default $DOCKER_HOST)")
}

// connectForUp connects to (or starts) the server up deploys to, with the
// driver asked for, and returns what the server says of itself.
func (g *globals) connectForUp(ctx context.Context, listen, driverName, dockerHost string) (*conn, *api.ServerInfo, error) {
	var serveArgs []string
	if driverName != "" {
		serveArgs = append(serveArgs, "--driver", driverName)
	}
	if dockerHost != "" {
		serveArgs = append(serveArgs, "--docker-host", dockerHost)
	}
	cn, _, err := g.connectOrStart(ctx, listen, serveArgs...)
	if err != nil {
		return nil, nil, err
	}
	info, err := cn.api.ServerInfo(ctx)
	if err != nil {
		return nil, nil, describe(err)
	}
	if driverName != "" && info.Driver != driverName {
		return nil, nil, fmt.Errorf("--driver %s, but the server at %s runs the %s driver; stop it first (it keeps its state), or use another --data-dir", driverName, cn.api.BaseURL(), info.Driver)
	}
	return cn, info, nil
}

// buildSeedImage builds DIR/docker-context (the seed's layout) with the
// deployment's environment.image tag when the server's engine lacks that
// image, as `az acr build ./docker-context -t IMAGE` does before Azure's
// deployment.
func (cn *conn) buildSeedImage(ctx context.Context, g *globals, dir string, d *spec.Deployment, step func(string, ...any)) error {
	if d.Environment == nil || d.Environment.Inline == nil {
		return nil
	}
	env := d.Environment.Inline
	if env.Image == "" || env.Build != nil {
		return nil
	}
	has, err := cn.api.ImageExists(ctx, env.Image)
	if err != nil {
		return describe(err)
	}
	if has {
		step("image %s is on the server's container engine", env.Image)
		return nil
	}
	buildDir := filepath.Join(dir, "docker-context")
	if _, err := os.Stat(filepath.Join(buildDir, "Dockerfile")); err != nil {
		return fmt.Errorf("deployment %s runs image %s, which the server's container engine does not have, and there is no %s to build it from; build it (plumbline image build DIR -t %s) or load it", d.Name, env.Image, filepath.Join(buildDir, "Dockerfile"), env.Image)
	}
	step("image %s is not on the server's container engine: building %s", env.Image, relPath(buildDir))
	return cn.buildImage(ctx, g, buildDir, "", []string{env.Image})
}
