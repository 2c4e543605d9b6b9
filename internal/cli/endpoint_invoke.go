package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func newEndpointInvoke(g *globals) *cobra.Command {
	var name, requestFile, deployment string
	var verbose bool
	var body []byte
	c := &cobra.Command{
		Use:   "invoke",
		Short: "Score a request through the endpoint's gateway, with its key or token",
		Long: `Score a request through the endpoint's gateway, with its key or token, and print the answer.

With -v, standard error also gets the status, the latency (as this client saw it, and the
gateway's Server-Timing split into queue and model time), the deployment that answered and the
request id. When the request fails, the error names the request id and the command that shows
the deployment's log lines for it.`,
		Example: `  plumbline online-endpoint invoke --name my-endpoint --request-file sample_request.json
  plumbline online-endpoint invoke -n my-endpoint -r sample_request.json --deployment-name green -v`,
	}
	f := c.Flags()
	f.StringVarP(&name, "name", "n", "", "endpoint name")
	f.StringVarP(&requestFile, "request-file", "r", "", "JSON request body file ('-' for stdin)")
	f.StringVarP(&deployment, "deployment-name", "d", "", "send to this deployment, bypassing the traffic split (and mirroring)")
	f.BoolVarP(&verbose, "verbose", "v", false, "print the status, latency, deployment and request id to standard error")
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
			start := time.Now()
			resp, err := score(ctx, cn.http, e.ScoringURI, secret, deployment, body)
			if err != nil {
				return nil, err
			}
			defer resp.Body.Close()
			out, err := io.ReadAll(resp.Body)
			if err != nil {
				return nil, err
			}
			took := time.Since(start)
			if verbose {
				fmt.Fprintln(g.stderr, invokeSummary(resp, took))
			}
			if resp.StatusCode != http.StatusOK {
				return nil, invokeError(e.Name, resp, out)
			}
			g.stdout.Write(out)
			if len(out) > 0 && out[len(out)-1] != '\n' {
				fmt.Fprintln(g.stdout)
			}
			return nil, nil
		},
	})
}

// invokeSummary is invoke -v's line: status, latency, deployment, request id.
func invokeSummary(resp *http.Response, took time.Duration) string {
	s := fmt.Sprintf("%s in %.1f ms", resp.Status, float64(took.Microseconds())/1000)
	if st := serverTimingText(resp.Header.Get("Server-Timing")); st != "" {
		s += " (" + st + ")"
	}
	if d := resp.Header.Get("azureml-model-deployment"); d != "" {
		s += "; deployment " + d
	}
	if code := resp.Header.Get("ms-azureml-model-error-statuscode"); code != "" {
		s += "; the model answered " + code
	}
	return s + "; x-request-id " + resp.Header.Get("x-request-id")
}

// serverTimingText turns "queue;dur=0.1, model;dur=12.3" into
// "gateway: queue 0.1 ms, model 12.3 ms".
func serverTimingText(v string) string {
	var parts []string
	for _, m := range strings.Split(v, ",") {
		name, rest, ok := strings.Cut(strings.TrimSpace(m), ";dur=")
		if !ok {
			continue
		}
		parts = append(parts, name+" "+rest+" ms")
	}
	if len(parts) == 0 {
		return ""
	}
	return "gateway: " + strings.Join(parts, ", ")
}

// invokeError explains a failed scoring request: what answered, the body,
// and where to look next.
func invokeError(endpoint string, resp *http.Response, out []byte) error {
	rid := resp.Header.Get("x-request-id")
	dep := resp.Header.Get("azureml-model-deployment")
	msg := fmt.Sprintf("scoring returned %s", resp.Status)
	code := resp.Header.Get("ms-azureml-model-error-statuscode")
	if code != "" {
		msg += fmt.Sprintf(" (the model answered %s %s)", code, resp.Header.Get("ms-azureml-model-error-reason"))
	}
	if dep != "" {
		msg += "; deployment " + dep
	}
	msg += "; x-request-id " + rid + ": " + strings.TrimSpace(string(out))
	// plumbline's R handlers answer an R error with R's message and the
	// request id (docs/runtime.md).
	var rerr struct {
		Message   string `json:"message"`
		Call      string `json:"call"`
		RequestID string `json:"request_id"`
	}
	isR := code != "" && json.Unmarshal(out, &rerr) == nil && rerr.RequestID != ""
	if isR && rerr.Message != "" {
		msg += "\nR error: " + rerr.Message
		if rerr.Call != "" {
			msg += " (in " + rerr.Call + ")"
		}
	}
	modelCode, _ := strconv.Atoi(code)
	switch {
	case isR && dep != "":
		msg += fmt.Sprintf("\nThe deployment's log has this request: plumbline online-deployment get-logs --name %s --endpoint-name %s | grep %s", dep, endpoint, rid)
	case modelCode >= 500 && dep != "":
		msg += fmt.Sprintf("\nThe deployment's log may say why: plumbline online-deployment get-logs --name %s --endpoint-name %s", dep, endpoint)
	case resp.StatusCode == http.StatusTooManyRequests:
		msg += "\nEach instance takes request_settings.max_concurrent_requests_per_instance requests at a time (default 1), and the gateway queues at most as many again: for a slow model raise max_concurrent_requests_per_instance (and instance_count), or send fewer requests at once"
	case resp.StatusCode == http.StatusRequestTimeout:
		msg += "\nThe request was not answered within request_settings.request_timeout_ms (default 5000), time in the gateway's queue included: raise it for a slow model, or add instances"
	case resp.StatusCode == http.StatusServiceUnavailable && dep != "":
		msg += fmt.Sprintf("\nNo instance of %s is ready: plumbline online-deployment show --name %s --endpoint-name %s", dep, dep, endpoint)
	}
	return fmt.Errorf("%s", msg)
}
