package cli

import (
	"context"
	"io"

	"github.com/spf13/cobra"
)

// verb is what an API command adds to the skeleton every such command
// shares: no positional arguments, the required flags, the checks that need
// no server, connect, call, print.
type verb struct {
	// required lists flags that must be given; a missing one is a usage
	// error, found before connecting.
	required []string
	// check, if set, runs before connecting: usage mistakes a server is not
	// needed to find (bad flag combinations, unreadable files).
	check func(c *cobra.Command) error
	// call talks to the server. Its result is printed in the -o format with
	// cols (which call may set when the shape depends on the answer); a nil
	// result prints nothing.
	call func(ctx context.Context, cn *conn) (any, error)
	cols []column
	// text, if set, writes the table format (without --query) instead of
	// cols: for results that read better as a report than as one table.
	text func(w io.Writer, v any) error
}

// apiVerb finishes c (its Use, help and flags already set) as an API
// command: flags → checks → connect → call → print.
func (g *globals) apiVerb(c *cobra.Command, v *verb) *cobra.Command {
	c.Args = noArgs
	c.RunE = func(c *cobra.Command, args []string) error {
		if err := requireFlags(c, v.required...); err != nil {
			return err
		}
		if v.check != nil {
			if err := v.check(c); err != nil {
				return err
			}
		}
		p, err := g.printer()
		if err != nil {
			return err
		}
		cn, err := g.connect()
		if err != nil {
			return err
		}
		out, err := v.call(c.Context(), cn)
		if err != nil {
			return describe(err)
		}
		if out == nil {
			return nil
		}
		if v.text != nil && p.format == formatTable && p.query == nil {
			return v.text(g.stdout, out)
		}
		return p.print(out, v.cols)
	}
	return c
}
