package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

func newEndpointInvoke(g *globals) *cobra.Command {
	var name, requestFile, deployment string
	var body []byte
	c := &cobra.Command{
		Use:   "invoke",
		Short: "Score a request through the endpoint's gateway, with its key or token",
		Example: `  plumbline online-endpoint invoke --name my-endpoint --request-file sample_request.json
  plumbline online-endpoint invoke -n my-endpoint -r sample_request.json --deployment-name green`,
	}
	f := c.Flags()
	f.StringVarP(&name, "name", "n", "", "endpoint name")
	f.StringVarP(&requestFile, "request-file", "r", "", "JSON request body file ('-' for stdin)")
	f.StringVarP(&deployment, "deployment-name", "d", "", "send to this deployment, bypassing the traffic split (and mirroring)")
	return g.apiVerb(c, &verb{
		required: []string{"name", "request-file"},
		check: func(*cobra.Command) (err error) {
			if requestFile == "-" {
				body, err = io.ReadAll(g.stdin)
			} else {
				body, err = os.ReadFile(requestFile)
			}
			if err != nil {
				return fmt.Errorf("request file: %w", err)
			}
			return nil
		},
		call: func(ctx context.Context, cn *conn) (any, error) {
			e, err := cn.api.GetEndpoint(ctx, name)
			if err != nil {
				return nil, err
			}
			secret, err := cn.credential(ctx, e)
			if err != nil {
				return nil, err
			}
			resp, err := score(ctx, cn.http, e.ScoringURI, secret, deployment, body)
			if err != nil {
				return nil, err
			}
			defer resp.Body.Close()
			out, err := io.ReadAll(resp.Body)
			if err != nil {
				return nil, err
			}
			if resp.StatusCode != http.StatusOK {
				msg := fmt.Sprintf("scoring returned %s", resp.Status)
				if code := resp.Header.Get("ms-azureml-model-error-statuscode"); code != "" {
					msg += fmt.Sprintf(" (the model answered %s %s)", code, resp.Header.Get("ms-azureml-model-error-reason"))
				}
				if d := resp.Header.Get("azureml-model-deployment"); d != "" {
					msg += "; deployment " + d
				}
				return nil, fmt.Errorf("%s; x-request-id %s: %s", msg, resp.Header.Get("x-request-id"), strings.TrimSpace(string(out)))
			}
			g.stdout.Write(out)
			if len(out) > 0 && out[len(out)-1] != '\n' {
				fmt.Fprintln(g.stdout)
			}
			return nil, nil
		},
	})
}
