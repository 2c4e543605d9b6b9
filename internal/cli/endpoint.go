package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/spec"
)

// The online-endpoint verbs: endpoint_create.go, endpoint_update.go,
// endpoint_show.go, endpoint_list.go, endpoint_delete.go,
// endpoint_invoke.go, endpoint_get_credentials.go,
// endpoint_regenerate_keys.go, endpoint_compare.go.

var endpointColumns = []column{
	field("NAME", "name"), field("AUTH", "auth_mode"), field("STATE", "provisioning_state"),
	field("TRAFFIC", "traffic"), field("MIRROR", "mirror_traffic"), field("SCORING URI", "scoring_uri"),
}

func newEndpointCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "online-endpoint", Aliases: []string{"endpoint"}, Short: "Manage online endpoints: create, update traffic, keys, invoke"}
	c.AddCommand(newEndpointCreate(g), newEndpointUpdate(g), newEndpointShow(g), newEndpointList(g), newEndpointDelete(g),
		newEndpointInvoke(g), newEndpointCredentials(g), newEndpointRegenerate(g), newEndpointRevokeTokens(g), newEndpointCompare(g))
	return c
}

// withFlags appends the --name-like flags that override a file's fields
// (name=…, endpoint_name=…) after the user's --set/--add/--remove, so the
// flags win.
func withFlags(ups []spec.Update, sets ...string) []spec.Update {
	out := append([]spec.Update(nil), ups...)
	for _, s := range sets {
		if !strings.HasSuffix(s, "=") {
			out = append(out, spec.Update{Op: spec.UpdateSet, Args: []string{s}, ForceString: true})
		}
	}
	return out
}

// loadEndpointFile loads an endpoint document with the generic update
// arguments and the --name / --auth-mode flags applied.
func loadEndpointFile(g *globals, file string, ups []spec.Update, name, authMode string) (*spec.Endpoint, error) {
	doc, err := spec.Load(file, spec.ParseOptions{Updates: withFlags(ups, "name="+name, "auth_mode="+authMode), Expect: spec.KindEndpoint})
	if err != nil {
		return nil, err
	}
	reportNotices(g.stderr, doc)
	return doc.Endpoint, nil
}

func parseEndpointBytes(what string, b []byte, ups []spec.Update) (*spec.Endpoint, error) {
	doc, err := spec.Parse(what, b, spec.ParseOptions{Updates: ups, Expect: spec.KindEndpoint})
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

// keepLiveTraffic gives ep the live traffic of cur when ep's file says
// nothing about traffic, so that re-applying an endpoint file does not
// silently stop it.
func keepLiveTraffic(ep *spec.Endpoint, cur *api.Endpoint) {
	if ep.Traffic == nil && ep.MirrorTraffic == nil {
		ep.Traffic, ep.MirrorTraffic = nonZeroTraffic(cur.Traffic), nonZeroTraffic(cur.MirrorTraffic)
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
	fmt.Fprintf(g.errw, "%s (y/n): ", question)
	line, _ := bufio.NewReader(g.stdin).ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
		return errors.New("cancelled")
	}
	return nil
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
