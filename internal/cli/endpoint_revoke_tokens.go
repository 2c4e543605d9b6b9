package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

// newEndpointRevokeTokens is a plumbline extension: az has no verb that
// revokes an endpoint's aml_tokens before they expire.
func newEndpointRevokeTokens(g *globals) *cobra.Command {
	var name string
	c := &cobra.Command{Use: "revoke-tokens", Short: "Revoke every aml_token issued for the endpoint so far; they stop working at once (plumbline extension)"}
	c.Flags().StringVarP(&name, "name", "n", "", "endpoint name")
	return g.apiVerb(c, &verb{
		required: []string{"name"},
		call: func(ctx context.Context, cn *conn) (any, error) {
			if _, err := cn.api.RevokeTokens(ctx, name); err != nil {
				return nil, err
			}
			fmt.Fprintf(g.stderr, "Revoked every token issued for endpoint %s; get a new one with: plumbline online-endpoint get-credentials --name %s\n", name, name)
			return nil, nil
		},
	})
}
