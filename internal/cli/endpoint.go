package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/spec"
)

var endpointColumns = []column{
	field("NAME", "name"), field("AUTH", "auth_mode"), field("STATE", "provisioning_state"),
	field("TRAFFIC", "traffic"), field("MIRROR", "mirror_traffic"), field("SCORING URI", "scoring_uri"),
}

func newEndpointCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "online-endpoint", Aliases: []string{"endpoint"}, Short: "Manage online endpoints: create, update traffic, keys, invoke"}
	c.AddCommand(newEndpointCreate(g), newEndpointUpdate(g), newEndpointShow(g), newEndpointList(g), newEndpointDelete(g),
		newEndpointInvoke(g), newEndpointCredentials(g), newEndpointRegenerate(g))
	return c
}

// loadEndpointFile loads an endpoint document with --set overrides and the
// --name / --auth-mode flags folded in as sets.
func loadEndpointFile(file string, sets []string, name, authMode string) (*spec.Endpoint, error) {
	if name != "" {
		sets = append(sets, "name="+name)
	}
	if authMode != "" {
		sets = append(sets, "auth_mode="+authMode)
	}
	ep, doc, err := spec.LoadEndpoint(file, sets)
	if err != nil {
		return nil, err
	}
	if err := ep.Validate(); err != nil {
		return nil, err
	}
	reportNotices(os.Stderr, doc)
	return ep, nil
}

func newEndpointCreate(g *globals) *cobra.Command {
	var file, name, authMode string
	var sets []string
	var noWait bool
	c := &cobra.Command{
		Use:   "create",
		Short: "Create an endpoint (fails if it exists; see 'plumbline apply')",
		Example: `  plumbline online-endpoint create -f endpoint.yml
  plumbline online-endpoint create --name my-endpoint --auth-mode key`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			var doc []byte
			if file != "" {
				ep, err := loadEndpointFile(file, sets, name, authMode)
				if err != nil {
					return err
				}
				if doc, err = json.Marshal(ep); err != nil {
					return err
				}
			} else {
				if name == "" {
					return usageErrorf("online-endpoint create needs -f endpoint.yml or --name")
				}
				m := map[string]any{"name": name}
				if authMode != "" {
					m["auth_mode"] = authMode
				}
				b, _ := json.Marshal(m)
				ep, err := parseEndpointBytes("--name", b, sets)
				if err != nil {
					return err
				}
				if doc, err = json.Marshal(ep); err != nil {
					return err
				}
			}
			cn, err := g.connect()
			if err != nil {
				return err
			}
			out, err := cn.api.CreateEndpoint(c.Context(), doc)
			if err != nil {
				return describe(err)
			}
			fmt.Fprintf(g.stderr, "Created endpoint %s (auth_mode %s)\n", out.Name, out.AuthMode)
			return g.print(out, endpointColumns)
		},
	}
	f := c.Flags()
	f.StringVarP(&file, "file", "f", "", "endpoint YAML file")
	f.StringVarP(&name, "name", "n", "", "endpoint name (overrides the file's)")
	f.StringVar(&authMode, "auth-mode", "", "key (default), aml_token or aad_token")
	f.StringArrayVar(&sets, "set", nil, "override a field, e.g. --set auth_mode=key (repeatable)")
	f.BoolVar(&noWait, "no-wait", false, "do not wait (endpoint creation is immediate; accepted for compatibility)")
	return c
}

func parseEndpointBytes(what string, b []byte, sets []string) (*spec.Endpoint, error) {
	doc, err := spec.Parse(what, b, spec.ParseOptions{Sets: sets, Expect: spec.KindEndpoint})
	if err != nil {
		return nil, err
	}
	if err := doc.Endpoint.Validate(); err != nil {
		return nil, err
	}
	return doc.Endpoint, nil
}

func nonZeroTraffic(m map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		if v > 0 {
			out[k] = v
		}
	}
	return out
}

func newEndpointUpdate(g *globals) *cobra.Command {
	var file, name, traffic, mirror string
	var sets []string
	var noWait bool
	c := &cobra.Command{
		Use:   "update",
		Short: "Update an endpoint: traffic, mirror traffic, description, tags, auth mode",
		Example: `  plumbline online-endpoint update --name my-endpoint --traffic "blue=90 green=10"
  plumbline online-endpoint update --name my-endpoint --mirror-traffic "green=10"
  plumbline online-endpoint update -f endpoint.yml`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if file == "" && name == "" {
				return usageErrorf("online-endpoint update needs --name or -f endpoint.yml")
			}
			var t, m map[string]int
			var err error
			if c.Flags().Changed("traffic") {
				if t, err = spec.ParseTraffic(traffic); err != nil {
					return usageErrorf("--traffic: %v", err)
				}
			}
			if c.Flags().Changed("mirror-traffic") {
				if m, err = spec.ParseTraffic(mirror); err != nil {
					return usageErrorf("--mirror-traffic: %v", err)
				}
			}
			cn, err := g.connect()
			if err != nil {
				return err
			}
			ctx := c.Context()
			var ep *spec.Endpoint
			if file != "" {
				if ep, err = loadEndpointFile(file, sets, name, ""); err != nil {
					return err
				}
				name = ep.Name
			}
			cur, err := cn.api.GetEndpoint(ctx, name)
			if err != nil {
				return describe(err)
			}
			if ep == nil {
				doc, err := cn.api.GetEndpointDocument(ctx, name)
				if err != nil {
					return describe(err)
				}
				if ep, err = parseEndpointBytes("endpoint "+name, doc, sets); err != nil {
					return err
				}
			} else if ep.Traffic == nil && ep.MirrorTraffic == nil {
				// The file says nothing about traffic: keep what is live.
				ep.Traffic, ep.MirrorTraffic = nonZeroTraffic(cur.Traffic), nonZeroTraffic(cur.MirrorTraffic)
			}
			if t != nil {
				ep.Traffic = t
			}
			if m != nil {
				ep.MirrorTraffic = m
			}
			if err := ep.Validate(); err != nil {
				return err
			}
			doc, err := json.Marshal(ep)
			if err != nil {
				return err
			}
			out, err := cn.api.UpdateEndpoint(ctx, name, doc)
			if err != nil {
				return describe(err)
			}
			return g.print(out, endpointColumns)
		},
	}
	f := c.Flags()
	f.StringVarP(&file, "file", "f", "", "endpoint YAML file")
	f.StringVarP(&name, "name", "n", "", "endpoint name")
	f.StringVarP(&traffic, "traffic", "r", "", `traffic split, space-separated pairs in quotes: "blue=90 green=10"`)
	f.StringVar(&mirror, "mirror-traffic", "", `mirror share to one deployment: "green=10" ("green=0" stops mirroring)`)
	f.StringArrayVar(&sets, "set", nil, "override a field, e.g. --set description=... (repeatable)")
	f.BoolVar(&noWait, "no-wait", false, "do not wait (updates are immediate; accepted for compatibility)")
	return c
}

func newEndpointShow(g *globals) *cobra.Command {
	var name string
	c := &cobra.Command{
		Use:   "show",
		Short: "Show an endpoint: state, traffic, scoring URI",
		Args:  noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if err := requireFlags(c, "name"); err != nil {
				return err
			}
			cn, err := g.connect()
			if err != nil {
				return err
			}
			e, err := cn.api.GetEndpoint(c.Context(), name)
			if err != nil {
				return describe(err)
			}
			return g.print(e, endpointColumns)
		},
	}
	c.Flags().StringVarP(&name, "name", "n", "", "endpoint name")
	return c
}

func newEndpointList(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List endpoints",
		Args:  noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			cn, err := g.connect()
			if err != nil {
				return err
			}
			es, err := cn.api.ListEndpoints(c.Context())
			if err != nil {
				return describe(err)
			}
			if es == nil {
				es = []api.Endpoint{}
			}
			return g.print(es, endpointColumns)
		},
	}
}

// confirm asks on a terminal; elsewhere it requires --yes.
func confirm(g *globals, yes bool, question string) error {
	if yes {
		return nil
	}
	if f, ok := g.stdin.(*os.File); !ok || !isTerminal(f) {
		return usageErrorf("%s: pass --yes to confirm when not on a terminal", question)
	}
	fmt.Fprintf(g.stderr, "%s (y/n): ", question)
	line, _ := bufio.NewReader(g.stdin).ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
		return errors.New("cancelled")
	}
	return nil
}

func newEndpointDelete(g *globals) *cobra.Command {
	var name string
	var yes, noWait bool
	c := &cobra.Command{
		Use:   "delete",
		Short: "Delete an endpoint and all its deployments",
		Args:  noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if err := requireFlags(c, "name"); err != nil {
				return err
			}
			if err := confirm(g, yes, "Delete endpoint "+name+" and all its deployments?"); err != nil {
				return err
			}
			cn, err := g.connect()
			if err != nil {
				return err
			}
			ctx := c.Context()
			if err := cn.api.DeleteEndpoint(ctx, name); err != nil {
				return describe(err)
			}
			if noWait {
				fmt.Fprintf(g.stderr, "Deleting endpoint %s\n", name)
				return nil
			}
			start := time.Now()
			if err := waitGone(ctx, func(ctx context.Context) error { _, err := cn.api.GetEndpoint(ctx, name); return err }); err != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "Deleted endpoint %s (%.1fs)\n", name, time.Since(start).Seconds())
			return nil
		},
	}
	c.Flags().StringVarP(&name, "name", "n", "", "endpoint name")
	c.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	c.Flags().BoolVar(&noWait, "no-wait", false, "return once deletion has started")
	return c
}

// waitGone polls get until it returns 404.
func waitGone(ctx context.Context, get func(context.Context) error) error {
	for {
		err := get(ctx)
		if api.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return describe(err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

func newEndpointCredentials(g *globals) *cobra.Command {
	var name string
	c := &cobra.Command{
		Use:   "get-credentials",
		Short: "Print the endpoint's keys (auth_mode key) or a fresh token (aml_token)",
		Args:  noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if err := requireFlags(c, "name"); err != nil {
				return err
			}
			cn, err := g.connect()
			if err != nil {
				return err
			}
			ctx := c.Context()
			e, err := cn.api.GetEndpoint(ctx, name)
			if err != nil {
				return describe(err)
			}
			switch e.AuthMode {
			case "key":
				k, err := cn.api.ListKeys(ctx, name)
				if err != nil {
					return describe(err)
				}
				return g.print(k, []column{field("PRIMARY KEY", "primaryKey"), field("SECONDARY KEY", "secondaryKey")})
			case "aml_token":
				t, err := cn.api.GetToken(ctx, name)
				if err != nil {
					return describe(err)
				}
				return g.print(t, []column{field("ACCESS TOKEN", "accessToken"), field("EXPIRES", "expiryTimeUtc"), field("REFRESH AFTER", "refreshAfterTimeUtc")})
			}
			return fmt.Errorf("endpoint %s uses auth_mode %s: get a token from your OpenID Connect provider", name, e.AuthMode)
		},
	}
	c.Flags().StringVarP(&name, "name", "n", "", "endpoint name")
	return c
}

func newEndpointRegenerate(g *globals) *cobra.Command {
	var name, keyType string
	var noWait bool
	c := &cobra.Command{
		Use:   "regenerate-keys",
		Short: "Replace the primary or secondary key; the old one stops working at once",
		Args:  noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if err := requireFlags(c, "name"); err != nil {
				return err
			}
			kt := strings.ToLower(keyType)
			if kt != "primary" && kt != "secondary" {
				return usageErrorf("--key-type %q: want primary or secondary", keyType)
			}
			cn, err := g.connect()
			if err != nil {
				return err
			}
			if _, err := cn.api.RegenerateKeys(c.Context(), name, kt); err != nil {
				return describe(err)
			}
			fmt.Fprintf(g.stderr, "Regenerated the %s key of endpoint %s; see it with: plumbline online-endpoint get-credentials --name %s\n", kt, name, name)
			return nil
		},
	}
	c.Flags().StringVarP(&name, "name", "n", "", "endpoint name")
	c.Flags().StringVar(&keyType, "key-type", "primary", "primary or secondary")
	c.Flags().BoolVar(&noWait, "no-wait", false, "accepted for compatibility")
	return c
}

func newEndpointInvoke(g *globals) *cobra.Command {
	var name, requestFile, deployment string
	c := &cobra.Command{
		Use:   "invoke",
		Short: "Score a request through the endpoint's gateway, with its key or token",
		Example: `  plumbline online-endpoint invoke --name my-endpoint --request-file sample_request.json
  plumbline online-endpoint invoke -n my-endpoint -r sample_request.json --deployment-name green`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if err := requireFlags(c, "name", "request-file"); err != nil {
				return err
			}
			var body []byte
			var err error
			if requestFile == "-" {
				body, err = io.ReadAll(g.stdin)
			} else {
				body, err = os.ReadFile(requestFile)
			}
			if err != nil {
				return fmt.Errorf("request file: %w", err)
			}
			cn, err := g.connect()
			if err != nil {
				return err
			}
			ctx := c.Context()
			e, err := cn.api.GetEndpoint(ctx, name)
			if err != nil {
				return describe(err)
			}
			secret, err := cn.credential(ctx, e)
			if err != nil {
				return err
			}
			resp, err := score(ctx, cn.http, e.ScoringURI, secret, deployment, body)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			out, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				msg := fmt.Sprintf("scoring returned %s", resp.Status)
				if code := resp.Header.Get("ms-azureml-model-error-statuscode"); code != "" {
					msg += fmt.Sprintf(" (the model answered %s %s)", code, resp.Header.Get("ms-azureml-model-error-reason"))
				}
				if d := resp.Header.Get("azureml-model-deployment"); d != "" {
					msg += "; deployment " + d
				}
				return fmt.Errorf("%s; x-request-id %s: %s", msg, resp.Header.Get("x-request-id"), strings.TrimSpace(string(out)))
			}
			g.stdout.Write(out)
			if len(out) > 0 && out[len(out)-1] != '\n' {
				fmt.Fprintln(g.stdout)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVarP(&name, "name", "n", "", "endpoint name")
	f.StringVarP(&requestFile, "request-file", "r", "", "JSON request body file ('-' for stdin)")
	f.StringVarP(&deployment, "deployment-name", "d", "", "send to this deployment, bypassing the traffic split (and mirroring)")
	return c
}

// credential fetches the secret to score an endpoint with.
func (cn *conn) credential(ctx context.Context, e *api.Endpoint) (string, error) {
	switch e.AuthMode {
	case "key":
		k, err := cn.api.ListKeys(ctx, e.Name)
		if err != nil {
			return "", describe(err)
		}
		return k.PrimaryKey, nil
	case "aml_token":
		t, err := cn.api.GetToken(ctx, e.Name)
		if err != nil {
			return "", describe(err)
		}
		return t.AccessToken, nil
	}
	if tok := os.Getenv("PLUMBLINE_AAD_TOKEN"); tok != "" {
		return tok, nil
	}
	return "", fmt.Errorf("endpoint %s uses aad_token: set PLUMBLINE_AAD_TOKEN to a token from your OpenID Connect provider", e.Name)
}

// score POSTs body to the scoring URI.
func score(ctx context.Context, hc *http.Client, uri, secret, deployment string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, strings.NewReader(string(body)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+secret)
	if deployment != "" {
		req.Header.Set("azureml-model-deployment", deployment)
	}
	return hc.Do(req)
}
