package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

var (
	keysColumns  = []column{field("PRIMARY KEY", "primaryKey"), field("SECONDARY KEY", "secondaryKey")}
	tokenColumns = []column{field("ACCESS TOKEN", "accessToken"), field("EXPIRES", "expiryTimeUtc"), field("REFRESH AFTER", "refreshAfterTimeUtc")}
)

func newEndpointCredentials(g *globals) *cobra.Command {
	var name string
	c := &cobra.Command{Use: "get-credentials", Short: "Print the endpoint's keys (auth_mode key) or a fresh token (aml_token)"}
	c.Flags().StringVarP(&name, "name", "n", "", "endpoint name")
	v := &verb{required: []string{"name"}}
	v.call = func(ctx context.Context, cn *conn) (any, error) {
		e, err := cn.api.GetEndpoint(ctx, name)
		if err != nil {
			return nil, err
		}
		switch e.AuthMode {
		case "key":
			v.cols = keysColumns
			return cn.api.ListKeys(ctx, name)
		case "aml_token":
			v.cols = tokenColumns
			return cn.api.GetToken(ctx, name)
		}
		return nil, fmt.Errorf("endpoint %s uses auth_mode %s: get a token from your OpenID Connect provider", name, e.AuthMode)
	}
	return g.apiVerb(c, v)
}
