package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/api"
)

var captureColumns = []column{
	field("TIME", "time"), field("REQUEST ID", "request_id"), field("STATUS", "status"),
	field("LATENCY MS", "latency_ms"), field("MODEL", "model"), field("INSTANCE", "instance"),
}

// parseSince reads --since: a duration back from now (10m, 2h) or an RFC
// 3339 time.
func parseSince(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, usageErrorf("--since %q: want a duration back from now (10m, 2h) or a time such as 2026-03-01T12:00:00Z", s)
}

func newDeploymentCapture(g *globals) *cobra.Command {
	var name, endpoint, since, requestID string
	var limit int
	c := &cobra.Command{
		Use:   "capture",
		Short: "Read a deployment's captured request/response pairs (plumbline.capture), newest last",
		Long: `Read the request/response pairs a deployment's plumbline.capture block keeps: each record has
the request id, deployment, model version and digest, status and latency, and both bodies,
redacted before they were written. They live in JSON Lines files under the server's data dir
(capture/<endpoint>/<deployment>/); -o json prints the records, the table one line each.`,
		Example: `  plumbline online-deployment capture --name blue --endpoint-name my-endpoint --since 10m
  plumbline online-deployment capture replay --name blue --endpoint-name my-endpoint --to green`,
	}
	c.Flags().StringVarP(&name, "name", "n", "", "deployment name")
	c.Flags().StringVarP(&endpoint, "endpoint-name", "e", "", "endpoint name")
	c.Flags().IntVar(&limit, "limit", 100, "newest records to show")
	c.Flags().StringVar(&since, "since", "", "records captured since a duration ago (10m) or a time (RFC 3339)")
	c.Flags().StringVar(&requestID, "request-id", "", "the record of one request (its x-request-id)")
	g.apiVerb(c, &verb{
		required: []string{"name", "endpoint-name"},
		check:    func(*cobra.Command) error { _, err := parseSince(since); return err },
		call: func(ctx context.Context, cn *conn) (any, error) {
			t, _ := parseSince(since)
			rc, err := cn.api.Capture(ctx, endpoint, name, api.CaptureOptions{Limit: limit, Since: t, RequestID: requestID})
			if err != nil {
				return nil, err
			}
			defer rc.Close()
			out := []json.RawMessage{}
			sc := bufio.NewScanner(rc)
			sc.Buffer(make([]byte, 64<<10), 64<<20)
			for sc.Scan() {
				out = append(out, append(json.RawMessage(nil), sc.Bytes()...))
			}
			if err := sc.Err(); err != nil {
				return nil, fmt.Errorf("read the records: %w", err)
			}
			return out, nil
		},
		cols: captureColumns,
	})
	c.AddCommand(newCaptureReplay(g))
	return c
}

func newCaptureReplay(g *globals) *cobra.Command {
	var name, endpoint, to, since string
	var limit int
	c := &cobra.Command{
		Use:   "replay",
		Short: "Send a deployment's captured requests to another deployment and compare the answers (see online-endpoint compare)",
		Long: `Send the captured requests of deployment --name, one at a time, to deployment --to (through its
queue and limits), and compare each answer with the captured one; the figures join the
endpoint's comparisons as kind replay (online-endpoint compare). Requests are replayed as they
were captured: fields the capture rules removed are missing.`,
	}
	c.Flags().StringVarP(&name, "name", "n", "", "deployment whose captured requests are replayed")
	c.Flags().StringVarP(&endpoint, "endpoint-name", "e", "", "endpoint name")
	c.Flags().StringVar(&to, "to", "", "deployment that answers them")
	c.Flags().IntVar(&limit, "limit", 1000, "newest records to replay (at most 10000)")
	c.Flags().StringVar(&since, "since", "", "records captured since a duration ago (10m) or a time (RFC 3339)")
	return g.apiVerb(c, &verb{
		required: []string{"name", "endpoint-name", "to"},
		check:    func(*cobra.Command) error { _, err := parseSince(since); return err },
		call: func(ctx context.Context, cn *conn) (any, error) {
			t, _ := parseSince(since)
			fmt.Fprintf(g.stderr, "Replaying %s's captured requests to %s…\n", name, to)
			return cn.api.Replay(ctx, endpoint, name, api.ReplayRequest{To: to, Limit: limit, Since: t})
		},
		cols: []column{field("FROM", "from"), field("TO", "to"), field("RECORDS", "records"), field("SENT", "sent"),
			field("ANSWERED", "answered"), field("COMPARED", "compared"), field("AGREED", "agreed"), field("DROPPED", "dropped")},
	})
}
