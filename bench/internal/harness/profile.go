package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// ProfileResult is the gateway's CPU profile by category
// (bench/cmd/gateway-profile), as the Markdown table the tool prints.
type ProfileResult struct {
	Table   string
	Seconds int
}

// profile runs bench/cmd/gateway-profile: the gateway in a process of its
// own, configured as serve configures it, under wrk with a CPU profile.
func (e *env) profile(ctx context.Context) error {
	if e.wrk == "" {
		return errors.New("the profile needs wrk (Debian: apt-get install wrk)")
	}
	bin := filepath.Join(e.tmp, "gateway-profile")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./bench/cmd/gateway-profile")
	build.Dir = e.cfg.RepoRoot
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build gateway-profile: %w\n%s", err, out)
	}
	secs := max(1, int(e.cfg.ProfileRun.Round(time.Second)/time.Second))
	cmd := exec.CommandContext(ctx, bin, "-seconds", strconv.Itoa(secs), "-conns", strconv.Itoa(e.cfg.Conns), "-backend", e.backend, "-wrk", e.wrk)
	cmd.Dir = e.cfg.RepoRoot
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("gateway-profile: %w\n%s", err, errb.Bytes())
	}
	e.res.Profile = &ProfileResult{Table: out.String(), Seconds: secs}
	e.logf("profile: %d s per protocol", secs)
	return nil
}
