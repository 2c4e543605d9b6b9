package load

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// H2Load is a closed-loop HTTP/2 run with nghttp2's h2load (C, like wrk,
// which speaks only HTTP/1.1): Conns connections, one stream in flight on
// each, for Duration.
type H2Load struct {
	Bin      string // path to h2load
	Target   Target
	Conns    int
	Threads  int
	Duration time.Duration
	// ScriptDir receives the request body file.
	ScriptDir string
}

// Run runs h2load and parses its report. h2load gives no latency
// percentiles; P50 and P99 stay zero.
func (h H2Load) Run(ctx context.Context) (Stats, error) {
	args := []string{"-c", strconv.Itoa(h.Conns), "-m", "1", "-t", strconv.Itoa(max(1, min(h.Threads, h.Conns))),
		"-D", strconv.Itoa(max(1, int(h.Duration.Round(time.Second)/time.Second)))}
	if h.Target.Body != nil {
		f := filepath.Join(h.ScriptDir, fmt.Sprintf("h2load-%d.body", time.Now().UnixNano()))
		if err := os.WriteFile(f, h.Target.Body, 0o600); err != nil {
			return Stats{}, err
		}
		defer os.Remove(f)
		args = append(args, "-d", f)
	}
	for k, vs := range h.Target.Header {
		for _, v := range vs {
			args = append(args, "-H", strings.ToLower(k)+": "+v)
		}
	}
	args = append(args, h.Target.URL)
	ctx, cancel := context.WithTimeout(ctx, h.Duration+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.Bin, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return Stats{}, fmt.Errorf("h2load: %w\n%s", err, out)
	}
	s, err := parseH2Load(string(out))
	if ps := cmd.ProcessState; ps != nil {
		s.GenCPU = ps.UserTime() + ps.SystemTime()
	}
	return s, err
}

// parseH2Load reads h2load's report:
//
//	finished in 5.00s, 12345.60 req/s, 1.23MB/s
//	requests: 61728 total, 61728 started, 61728 done, 61728 succeeded, 0 failed, 0 errored, 0 timeout
//
// Requests is "done" (which counts errored and timed-out requests too),
// OK "succeeded".
//
//	status codes: 61728 2xx, 0 3xx, 0 4xx, 0 5xx
func parseH2Load(out string) (Stats, error) {
	s := Stats{Tool: "h2load", Codes: map[int]int{}}
	var secs float64
	var done, succeeded, errored, timeout int
	var codes [6]int
	haveFinished, haveCodes := false, false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "finished in "):
			f := strings.Fields(strings.TrimPrefix(line, "finished in "))
			if len(f) > 0 {
				secs = parseWrkDuration(strings.TrimSuffix(f[0], ",")).Seconds()
				haveFinished = secs > 0
			}
		case strings.HasPrefix(line, "requests: "):
			for _, part := range strings.Split(strings.TrimPrefix(line, "requests: "), ",") {
				f := strings.Fields(part)
				if len(f) != 2 {
					continue
				}
				n, _ := strconv.Atoi(f[0])
				switch f[1] {
				case "done":
					done = n
				case "succeeded":
					succeeded = n
				case "errored":
					errored = n
				case "timeout":
					timeout = n
				}
			}
		case strings.HasPrefix(line, "status codes: "):
			haveCodes = true
			for _, part := range strings.Split(strings.TrimPrefix(line, "status codes: "), ",") {
				f := strings.Fields(part)
				if len(f) != 2 || len(f[1]) != 3 || f[1][1:] != "xx" {
					continue
				}
				n, _ := strconv.Atoi(f[0])
				if c := int(f[1][0] - '0'); c >= 1 && c <= 5 {
					codes[c] += n
				}
			}
		}
	}
	if !haveFinished || !haveCodes {
		return s, fmt.Errorf("h2load: cannot read its report:\n%s", out)
	}
	for c := 1; c <= 5; c++ {
		if codes[c] > 0 {
			s.Codes[c*100] = codes[c] // h2load counts classes, not statuses
		}
	}
	// In timing-based runs the status codes also count answers outside the
	// measured window; "done" and "succeeded" do not.
	s.OK = min(succeeded, codes[2])
	s.Errors = errored + timeout
	s.Requests = max(done, s.OK)
	if s.Errors > 0 {
		s.ErrorSamples = append(s.ErrorSamples, fmt.Sprintf("errored %d, timeout %d", errored, timeout))
	}
	s.Elapsed = time.Duration(secs * float64(time.Second))
	s.RPS = float64(s.OK) / secs
	return s, nil
}
