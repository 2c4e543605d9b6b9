package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/plumbline/plumbline/internal/rworker"
)

// ErrNotLean: the instance does not run the lean R runtime, which alone
// has workers to resize.
var ErrNotLean = errors.New("the instance does not run the lean R runtime")

// SetWorkers resizes a lean R instance's pool of workers through its
// supervisor's control socket and returns once they are ready. 0 parks the
// instance: no worker runs, the loaded R session (the model in memory)
// stays alive and not ready, and a later resize forks from it in
// milliseconds instead of starting R. ErrNotLean for any other instance.
func (d *Driver) SetWorkers(ctx context.Context, id string, n int) error {
	if _, err := d.lookup("set workers of", id); err != nil {
		return err
	}
	sock := rworker.ControlSocket(RWorkerDir(d.cfg.StateDir, id))
	if _, err := os.Stat(sock); err != nil {
		return fmt.Errorf("set workers of %s: %w", id, ErrNotLean)
	}
	client := &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", sock)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "http://rworker/workers?n="+strconv.Itoa(n), nil)
	if err != nil {
		return err
	}
	res, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("set workers of %s to %d: %w", id, n, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 4<<10))
		return fmt.Errorf("set workers of %s to %d: %s: %s", id, n, res.Status, strings.TrimSpace(string(b)))
	}
	return nil
}
