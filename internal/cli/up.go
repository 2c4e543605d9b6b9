package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/plumber"
	"github.com/plumbline/plumbline/internal/registry"
	"github.com/plumbline/plumbline/internal/spec"
)

// upFiles finds the documents `up` and `down` act on: -f files if given,
// else DIR/endpoint.yml and DIR/deployment.yml.
func upFiles(dir string, files []string) ([]string, error) {
	if len(files) > 0 {
		return files, nil
	}
	var out []string
	for _, name := range []string{"endpoint.yml", "deployment.yml"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%s: %w (give the files with -f)", p, err)
		}
		out = append(out, p)
	}
	return out, nil
}

type upPlan struct {
	endpoint    *spec.Endpoint
	deployments []*spec.Document
	dir         string
}

func loadUpPlan(dir string, files, sets []string) (*upPlan, error) {
	files, err := upFiles(dir, files)
	if err != nil {
		return nil, err
	}
	p := &upPlan{dir: dir}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		doc, err := spec.Parse(f, data, spec.ParseOptions{BaseDir: filepath.Dir(f), Sets: sets})
		if err != nil {
			return nil, err
		}
		if err := doc.Validate(); err != nil {
			return nil, err
		}
		switch doc.Kind {
		case spec.KindEndpoint:
			if p.endpoint != nil {
				return nil, usageErrorf("%s: a second endpoint; up deploys one endpoint", f)
			}
			p.endpoint = doc.Endpoint
		case spec.KindDeployment:
			p.deployments = append(p.deployments, doc)
		default:
			return nil, usageErrorf("%s is a %s document; up takes an endpoint and its deployments", f, doc.Kind)
		}
	}
	if p.endpoint == nil {
		return nil, usageErrorf("no endpoint document among the files")
	}
	for _, d := range p.deployments {
		if d.Deployment.EndpointName == "" {
			d.Deployment.EndpointName = p.endpoint.Name
		}
		if !strings.EqualFold(d.Deployment.EndpointName, p.endpoint.Name) {
			return nil, usageErrorf("%s is for endpoint %s, not %s", d.File, d.Deployment.EndpointName, p.endpoint.Name)
		}
	}
	return p, nil
}

// attachSample makes the file at path (up's sample_request.json) the sample
// request of every deployment that has none, when the file exists. It
// returns how many deployments got it.
func (p *upPlan) attachSample(path string) (int, error) {
	if _, err := os.Stat(path); err != nil {
		return 0, nil
	}
	var v any
	n := 0
	for _, doc := range p.deployments {
		d := doc.Deployment
		if d.Plumbline != nil && d.Plumbline.SampleRequest != nil {
			continue
		}
		if v == nil {
			var err error
			if v, err = spec.ReadSampleRequest(path); err != nil {
				return 0, fmt.Errorf("sample request: %w (fix it, or give --no-test)", err)
			}
		}
		if d.Plumbline == nil {
			d.Plumbline = &spec.DeploymentExtension{}
		}
		d.Plumbline.SampleRequest = v
		n++
	}
	return n, nil
}

func newUpCmd(g *globals) *cobra.Command {
	var files, sets []string
	var noTest, inferPrototype bool
	var listen, driverName, dockerHost string
	c := &cobra.Command{
		Use:   "up [DIR | MODEL]",
		Short: "Deploy a folder like the seed's (endpoint.yml, deployment.yml, models/, src/) in one step",
		Long: `Deploy an endpoint and its deployments from a folder laid out like Azure's R example:
endpoint.yml, deployment.yml, the code folder and the model folder. up uses the configured
server or starts a local one in the background, registers the model (a deployment's
azureml:<name>@latest is registered from DIR/models when it is missing or the files changed),
creates or updates the endpoint and deployments, gives a single deployment all traffic, waits
until they are Succeeded (or prints why not, with the last log lines), scores
sample_request.json if there is one, and prints the scoring URI with ready-to-paste curl and
R httr2 calls. sample_request.json is also each deployment's sample request
(plumbline.sample_request): a new instance joins the pool only once it answers it with a 2xx,
so a model that loads but cannot score never gets traffic.

Given a model instead of a folder with YAML — an .rds file, a crate.bin, or a folder holding an
MLflow model (MLmodel), a vetiver pin (pins data.txt), a crate.bin or one .rds — up creates an
endpoint named after it and a deployment blue served by plumbline's built-in scorer, with no
YAML at all; --infer-prototype makes the sample_request.json next to it the input contract.`,
		Example: "  plumbline up examples/r-iris\n  plumbline up -f endpoint.yml -f blue.yml -f green.yml\n  plumbline up model.rds\n  plumbline up ./mlflow-model --infer-prototype",
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageErrorf("up takes one folder, got %d", len(args))
			}
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			start := time.Now()
			step := func(format string, a ...any) {
				fmt.Fprintf(g.stderr, "[%5.1fs] "+format+"\n", append([]any{time.Since(start).Seconds()}, a...)...)
			}
			var plan *upPlan
			var err error
			if typ, ok := bareModel(dir); ok && len(files) == 0 {
				plan, err = bareModelPlan(dir, typ, inferPrototype, sets)
				if err == nil {
					step("%s is a model with no YAML: endpoint %s, deployment blue, served by plumbline's built-in scorer (model type %s)", dir, plan.endpoint.Name, typ)
				}
			} else {
				plan, err = loadUpPlan(dir, files, sets)
			}
			if err != nil {
				return err
			}
			sample := filepath.Join(plan.dir, "sample_request.json")
			if !noTest {
				if n, err := plan.attachSample(sample); err != nil {
					return err
				} else if n > 0 {
					step("%s is each deployment's sample request: a new instance gets traffic only once it answers it with a 2xx (--no-test skips this)", filepath.Base(sample))
				}
			}
			ctx := c.Context()
			cn, info, err := g.connectForUp(ctx, listen, driverName, dockerHost)
			if err != nil {
				return err
			}
			ep := plan.endpoint

			for _, d := range plan.deployments {
				if info.Driver == "docker" {
					if err := cn.buildSeedImage(ctx, g, plan.dir, d.Deployment, step); err != nil {
						return err
					}
					continue
				}
				if w := dockerfileWarning(ctx, plan.dir, d.Deployment); w != "" {
					step("warning: %s", w)
				}
			}

			// Models referenced by name: register them from the folder.
			for _, d := range plan.deployments {
				if err := cn.registerReferencedModel(ctx, g, d.Deployment, plan.dir, step); err != nil {
					return err
				}
			}

			// Endpoint: create or update, keeping live traffic.
			created, err := cn.ensureEndpoint(ctx, ep)
			if err != nil {
				return err
			}
			if created {
				step("endpoint %s created (auth_mode %s)", ep.Name, ep.Defaulted().AuthMode)
			} else {
				step("endpoint %s exists; updated", ep.Name)
			}

			// Deployments: snapshot code, create or update, wait.
			for _, doc := range plan.deployments {
				d := doc.Deployment
				step("snapshotting code and files of deployment %s", d.Name)
				_, err := cn.ensureDeployment(ctx, g, d, start, false, func(exists bool) {
					if exists {
						step("updating deployment %s", d.Name)
					} else {
						step("creating deployment %s: starting instances, then probes", d.Name)
					}
				})
				if err != nil {
					return err
				}
				if err := cn.waitInstancesReady(ctx, d, step); err != nil {
					return err
				}
				step("deployment %s ready", d.Name)
			}

			// Traffic: a single deployment gets it all, unless traffic is set.
			cur, err := cn.api.GetEndpoint(ctx, ep.Name)
			if err != nil {
				return describe(err)
			}
			if len(plan.deployments) == 1 && len(nonZeroTraffic(cur.Traffic)) == 0 {
				if err := cn.setAllTraffic(ctx, g, ep.Name, plan.deployments[0].Deployment.Name); err != nil {
					return err
				}
			}

			e, err := cn.api.GetEndpoint(ctx, ep.Name)
			if err != nil {
				return describe(err)
			}
			// The snippets send the deployments' sample request inline;
			// without one (--no-test), the sample file by its path.
			requestFile := ""
			if _, err := os.Stat(sample); err == nil && noTest {
				requestFile = absPath(sample)
			}
			if err := cn.printHowToCall(ctx, g, e, plan, requestFile, time.Since(start)); err != nil {
				return err
			}

			// Score the sample request.
			if _, err := os.Stat(sample); err == nil && !noTest {
				body, err := os.ReadFile(sample)
				if err != nil {
					return err
				}
				secret, err := cn.credential(ctx, e)
				if err != nil {
					return err
				}
				resp, err := score(ctx, cn.http, e.ScoringURI, secret, "", body)
				if err != nil {
					return err
				}
				out, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				fmt.Fprintf(g.stderr, "\nScoring %s (%s, answered by %s, %.1fs after up started):\n", filepath.Base(sample), resp.Status, resp.Header.Get("azureml-model-deployment"), time.Since(start).Seconds())
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("scoring the sample request returned %s: %s", resp.Status, strings.TrimSpace(string(out)))
				}
				fmt.Fprintf(g.stdout, "%s\n", strings.TrimSpace(string(out)))
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringArrayVarP(&files, "file", "f", nil, "endpoint and deployment files (default DIR/endpoint.yml and DIR/deployment.yml)")
	wordsFlag(f, &sets, "set", "", "override a field in every file: --set a.b=VALUE [c=VALUE …] (repeatable)")
	f.BoolVar(&noTest, "no-test", false, "do not use sample_request.json: no sample request before traffic, no scoring at the end")
	f.BoolVar(&inferPrototype, "infer-prototype", false, "for a bare model: make sample_request.json (its columns and their types) the input contract the gateway enforces")
	f.StringVar(&listen, "listen", "", "address for the local server up starts when none runs (default 127.0.0.1:8443)")
	addUpDriverFlags(f, &driverName, &dockerHost)
	return c
}

// waitInstancesReady waits until a Succeeded deployment has its ready
// instances: an unchanged deployment is already Succeeded when up runs
// again, but after a server restart its instances are still starting.
func (cn *conn) waitInstancesReady(ctx context.Context, d *spec.Deployment, step func(string, ...any)) error {
	want := 1
	if n := d.Defaulted().InstanceCount; n != nil {
		want = *n
	}
	deadline := time.Now().Add(3 * time.Minute)
	said := false
	for {
		cur, err := cn.api.GetDeployment(ctx, d.EndpointName, d.Name)
		if err != nil {
			return describe(err)
		}
		ready := 0
		for _, in := range cur.Instances {
			if in.Ready {
				ready++
			}
		}
		if ready >= want || cur.ProvisioningState != api.StateSucceeded {
			return nil
		}
		if !said {
			step("waiting for %d instance(s) of %s to be ready (%d ready)", want, d.Name, ready)
			said = true
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("deployment %s: %d of %d instances ready after 3 minutes; see plumbline online-deployment show --name %s --endpoint-name %s", d.Name, ready, want, d.Name, d.EndpointName)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// registerReferencedModel makes sure a deployment's azureml:<name>[@latest]
// model exists: when DIR/models (or DIR/model) is there and the registered
// latest version differs from it (or there is none), it registers it.
func (cn *conn) registerReferencedModel(ctx context.Context, g *globals, d *spec.Deployment, dir string, step func(string, ...any)) error {
	if d.Model == nil || d.Model.Kind != spec.RefRegistered {
		if d.Model != nil && d.Model.Kind == spec.RefInline {
			step("registering model %s from %s", firstNonEmpty(d.Model.Inline.Name, "(anonymous)"), relPath(d.Model.Inline.Path))
		}
		return nil
	}
	name, version := d.Model.Name, d.Model.Version
	var local string
	for _, cand := range []string{"models", "model"} {
		if fi, err := os.Stat(filepath.Join(dir, cand)); err == nil && fi.IsDir() {
			local = filepath.Join(dir, cand)
			break
		}
	}
	v := version
	if v == "" {
		v = "@latest"
	}
	m, err := cn.api.GetModel(ctx, name, v)
	if err != nil && !api.IsNotFound(err) {
		return describe(err)
	}
	if local == "" {
		if err != nil {
			return fmt.Errorf("deployment %s uses model %s, which is not registered, and %s has no models/ folder to register it from; register it with: plumbline model create --name %s --path PATH", d.Name, d.Model.String(), dir, name)
		}
		return nil
	}
	digest, derr := registry.LocalDigest(local)
	if derr != nil {
		return derr
	}
	if err == nil && (m.Digest == digest || version != "") {
		step("model %s:%s is registered (%s)", m.Name, m.Version, shortDigest(m.Digest))
		return nil
	}
	step("registering model %s from %s", name, relPath(local))
	up, err := cn.upload(ctx, g, "model", local)
	if err != nil {
		return err
	}
	out, _, err := cn.api.CreateModel(ctx, api.ModelCreate{Name: name, Version: version, Artifact: up})
	if err != nil {
		return describe(err)
	}
	step("registered model %s version %s", out.Name, out.Version)
	for _, w := range out.Warnings {
		step("warning: %s", w)
	}
	return nil
}

// printHowToCall prints the scoring URI, a one-time studio sign-in link,
// each deployment's concurrency limit and the ready-to-paste calls the
// studio shows too (the server writes them).
func (cn *conn) printHowToCall(ctx context.Context, g *globals, e *api.Endpoint, plan *upPlan, requestFile string, took time.Duration) error {
	sn, err := cn.api.GetSnippets(ctx, e.Name, requestFile)
	if err != nil {
		return describe(err)
	}
	w := g.stderr
	fmt.Fprintf(w, "\nEndpoint %s is live (%.1fs).\n  Scoring URI: %s\n", e.Name, took.Seconds(), e.ScoringURI)
	if link, err := cn.api.CreateSigninLink(ctx, e.Name); err == nil {
		token := "the admin token"
		if info, err := cn.api.ServerInfo(ctx); err == nil && info.DataDir != "" {
			token += " in " + filepath.Join(info.DataDir, "admin.token")
		}
		fmt.Fprintf(w, "  Studio:      %s\n               (signs a browser in once, until %s; after that, sign in with %s)\n",
			link.URL, link.ExpiresAt.Local().Format("15:04"), token)
	}
	for _, doc := range plan.deployments {
		fmt.Fprintf(w, "  Limits:      %s\n", concurrencyNote(doc.Deployment))
	}
	fmt.Fprintf(w, `
Call it from any folder: run the first line in your shell, then curl, or start R from that shell.

%s

%s

%s
`, indent(sn.Shell), indent(sn.Curl), indent(sn.R))
	return nil
}

// concurrencyNote says how many requests a deployment takes at once before
// callers get 429 (Azure's rule), and what to change for a slow model.
func concurrencyNote(d *spec.Deployment) string {
	dd := d.Defaulted()
	per, n := 1, 1
	if rs := dd.RequestSettings; rs != nil && rs.MaxConcurrentRequestsPerInstance != nil {
		per = *rs.MaxConcurrentRequestsPerInstance
	}
	if dd.InstanceCount != nil {
		n = *dd.InstanceCount
	}
	s := fmt.Sprintf("deployment %s serves %d request(s) at a time (%d instance(s) × request_settings.max_concurrent_requests_per_instance %d); past %d in flight or queued, callers get 429",
		d.Name, per*n, n, per, 2*per*n)
	if per == 1 {
		s += "; for a slow model, raise max_concurrent_requests_per_instance or instance_count"
	}
	return s
}

// indent prefixes every line of s with two spaces.
func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}

// dockerfileWarning compares the packages DIR/docker-context/Dockerfile
// installs (the seed's layout, where deployment.yml names only the image
// built from it) with those the R scoring script names, and warns about the
// ones the script never names and this machine's R lacks: plumbline runs
// the script with this machine's R packages, so a crate needing them fails
// when called. Without R here, it warns about every such package.
func dockerfileWarning(ctx context.Context, dir string, d *spec.Deployment) string {
	cc := d.CodeConfiguration
	if cc == nil || !strings.EqualFold(filepath.Ext(cc.ScoringScript), ".r") || !spec.IsLocalPath(cc.Code) {
		return ""
	}
	if d.Environment == nil || d.Environment.Inline == nil || d.Environment.Inline.Build != nil {
		return "" // a build context is checked by the server
	}
	df, err := os.ReadFile(filepath.Join(dir, "docker-context", "Dockerfile"))
	if err != nil {
		return ""
	}
	src, err := os.ReadFile(filepath.Join(cc.Code, cc.ScoringScript))
	if err != nil {
		return ""
	}
	extra := plumber.DockerfileExtras(df, src)
	if len(extra) == 0 {
		return ""
	}
	if missing, err := plumber.MissingPackages(ctx, "", extra); err == nil {
		extra = missing
	}
	if len(extra) == 0 {
		return ""
	}
	return fmt.Sprintf("docker-context/Dockerfile installs %s, which %s never names and this machine's R does not have; plumbline runs %s with this machine's R packages: if the model needs them, install them here (%s)",
		strings.Join(extra, ", "), cc.ScoringScript, cc.ScoringScript, strings.ReplaceAll(plumber.InstallHint(extra), "\n", "; "))
}
