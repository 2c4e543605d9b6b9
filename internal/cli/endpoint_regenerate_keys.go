package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func newEndpointRegenerate(g *globals) *cobra.Command {
	var name, keyType string
	var noWait bool
	c := &cobra.Command{Use: "regenerate-keys", Short: "Replace the primary or secondary key (aml_token endpoints: revoke every token); the old one stops working at once"}
	c.Flags().StringVarP(&name, "name", "n", "", "endpoint name")
	c.Flags().StringVar(&keyType, "key-type", "primary", "primary or secondary")
	c.Flags().BoolVar(&noWait, "no-wait", false, "accepted for compatibility")
	return g.apiVerb(c, &verb{
		required: []string{"name"},
		check: func(*cobra.Command) error {
			keyType = strings.ToLower(keyType)
			if keyType != "primary" && keyType != "secondary" {
				return usageErrorf("--key-type %q: want primary or secondary", keyType)
			}
			return nil
		},
		call: func(ctx context.Context, cn *conn) (any, error) {
			keys, err := cn.api.RegenerateKeys(ctx, name, keyType)
			if err != nil {
				return nil, err
			}
			if keys.TokensRevoked {
				fmt.Fprintf(g.stderr, "Endpoint %s uses aml_token: revoked every token issued so far; get a new one with: plumbline online-endpoint get-credentials --name %s\n", name, name)
				return nil, nil
			}
			fmt.Fprintf(g.stderr, "Regenerated the %s key of endpoint %s; see it with: plumbline online-endpoint get-credentials --name %s\n", keyType, name, name)
			return nil, nil
		},
	})
}
