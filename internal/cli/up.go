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
R httr2 calls.

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
				if w := dockerfileWarning(plan.dir, d.Deployment); w != "" {
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
			printHowToCall(g, e, time.Since(start))

			// Score the sample request.
			sample := filepath.Join(plan.dir, "sample_request.json")
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
	f.BoolVar(&noTest, "no-test", false, "do not score sample_request.json")
	f.BoolVar(&inferPrototype, "infer-prototype", false, "for a bare model: make sample_request.json (its columns and their types) the input contract the gateway enforces")
	f.StringVar(&listen, "listen", "", "address for the local server up starts when none runs (default 127.0.0.1:8443)")
	addUpDriverFlags(f, &driverName, &dockerHost)
	return c
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
	return nil
}

// printHowToCall prints the scoring URI and ready-to-paste calls.
func printHowToCall(g *globals, e *api.Endpoint, took time.Duration) {
	w := g.stderr
	credCmd := "plumbline online-endpoint get-credentials --name " + e.Name
	field := "accessToken"
	if e.AuthMode == "key" {
		field = "primaryKey"
	}
	keyExpr := "$(" + credCmd + " --query " + field + " -o tsv)"
	ca := ""
	if g.caCertForPrint() != "" {
		ca = " --cacert " + g.caCertForPrint()
	}
	fmt.Fprintf(w, `
Endpoint %s is live (%.1fs).
  Scoring URI: %s
  Credentials: %s   (auth_mode %s)

curl:
  KEY=%s
  curl%s -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" \
       --data @sample_request.json %s

R (httr2):
  library(httr2)
  request("%s") |>
    req_auth_bearer_token(Sys.getenv("KEY")) |>
    req_body_json(jsonlite::read_json("sample_request.json")) |>%s
    req_perform() |> resp_body_json()
`, e.Name, took.Seconds(), e.ScoringURI, credCmd, e.AuthMode, keyExpr, ca, e.ScoringURI, e.ScoringURI, httr2CA(g.caCertForPrint()))
}

func httr2CA(ca string) string {
	if ca == "" {
		return ""
	}
	return "\n    req_options(cainfo = \"" + ca + "\") |>"
}

// caCertForPrint is the CA file clients of the local server must trust.
func (g *globals) caCertForPrint() string {
	if g.caCert != "" {
		return g.caCert
	}
	if v := os.Getenv(envCACert); v != "" {
		return v
	}
	p := filepath.Join(g.dataDirPath(), "tls", "ca.crt")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}

// dockerfileWarning compares the packages DIR/docker-context/Dockerfile
// installs (the seed's layout, where deployment.yml names only the image
// built from it) with those the R scoring script names, and warns about the
// ones the script never names: plumbline runs the script with this
// machine's R packages, so a crate needing them fails when called.
func dockerfileWarning(dir string, d *spec.Deployment) string {
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
	named := map[string]bool{}
	for _, p := range plumber.ScriptPackages(src) {
		named[p] = true
	}
	var extra []string
	for _, p := range plumber.DockerfilePackages(df) {
		if !named[p] && p != "plumber" {
			extra = append(extra, p)
		}
	}
	if len(extra) == 0 {
		return ""
	}
	return fmt.Sprintf("docker-context/Dockerfile installs %s, which %s never names; plumbline runs %s with this machine's R packages: install them here if the model needs them",
		strings.Join(extra, ", "), cc.ScoringScript, cc.ScoringScript)
}
