package cli

import (
	"context"

	"github.com/spf13/cobra"
)

func newInfoCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "info", Short: "Show the server: version, scoring base URL, the CA certificate to trust, driver"}
	return g.apiVerb(c, &verb{
		call: func(ctx context.Context, cn *conn) (any, error) {
			info, err := cn.api.ServerInfo(ctx)
			if err != nil {
				return nil, explainConnErr(describe(err), cn.api.BaseURL())
			}
			return info, nil
		},
		cols: []column{field("VERSION", "version"), field("SCORING BASE URL", "scoring_base_url"), field("CA CERT", "ca_cert_path"), field("DRIVER", "driver"), field("DATA DIR", "data_dir")},
	})
}
