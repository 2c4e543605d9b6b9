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

// Wrk is a closed-loop run with the wrk tool: Conns connections shared by
// Threads event-loop threads, for Duration. wrk is written in C and costs
// the shared CPUs less per request than a Go client does, so on a small box
// it leaves more of them to the servers under test.
type Wrk struct {
	Bin      string // path to wrk
	Target   Target
	Conns    int
	Threads  int
	Duration time.Duration
	// ScriptDir receives the Lua script that sets the method, body and
	// headers.
	ScriptDir string
}

// Run runs wrk and parses its report.
func (w Wrk) Run(ctx context.Context) (Stats, error) {
	script := filepath.Join(w.ScriptDir, fmt.Sprintf("wrk-%d.lua", time.Now().UnixNano()))
	if err := os.WriteFile(script, []byte(luaScript(w.Target)), 0o600); err != nil {
		return Stats{}, err
	}
	defer os.Remove(script)
	threads := max(1, min(w.Threads, w.Conns))
	secs := max(1, int(w.Duration.Round(time.Second)/time.Second))
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, w.Bin, "-t", strconv.Itoa(threads), "-c", strconv.Itoa(w.Conns),
		"-d", strconv.Itoa(secs)+"s", "--latency", "-s", script, w.Target.URL)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return Stats{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	s, err := parseWrk(string(out))
	if ps := cmd.ProcessState; ps != nil {
		s.GenCPU = ps.UserTime() + ps.SystemTime()
	}
	return s, err
}

// luaScript sets the request wrk sends; values are Lua long strings, so
// they need no escaping.
func luaScript(t Target) string {
	q := func(s string) string { return "[==[" + s + "]==]" }
	var b strings.Builder
	fmt.Fprintf(&b, "wrk.method = %s\n", q(t.Method))
	if t.Body != nil {
		fmt.Fprintf(&b, "wrk.body = %s\n", q(string(t.Body)))
	}
	for k, vs := range t.Header {
		for _, v := range vs {
			fmt.Fprintf(&b, "wrk.headers[ %s ] = %s\n", q(k), q(v)) // the spaces keep "[[" from opening a long string
		}
	}
	return b.String()
}

// parseWrk reads wrk's --latency report.
func parseWrk(out string) (Stats, error) {
	s := Stats{Tool: "wrk", Codes: map[int]int{}}
	var total, non2xx int
	var secs float64
	var haveTotal bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case strings.Contains(line, " requests in ") && len(f) >= 4:
			total, _ = strconv.Atoi(f[0])
			secs = parseWrkDuration(strings.TrimSuffix(f[3], ",")).Seconds()
			haveTotal = true
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:") && len(f) == 5:
			non2xx, _ = strconv.Atoi(f[4])
		case strings.HasPrefix(line, "Socket errors:"):
			// Socket errors: connect 0, read 0, write 0, timeout 0
			for i := 2; i+1 < len(f); i += 2 {
				n, _ := strconv.Atoi(strings.TrimSuffix(f[i+1], ","))
				if n > 0 {
					s.Errors += n
					s.ErrorSamples = append(s.ErrorSamples, f[i]+" errors: "+strconv.Itoa(n))
				}
			}
		case len(f) == 2 && f[0] == "50%":
			s.P50 = parseWrkDuration(f[1])
		case len(f) == 2 && f[0] == "99%":
			s.P99 = parseWrkDuration(f[1])
		case len(f) >= 4 && f[0] == "Latency":
			s.Max = parseWrkDuration(f[3])
		}
	}
	if !haveTotal || secs == 0 {
		return s, fmt.Errorf("wrk: cannot read its report:\n%s", out)
	}
	// wrk counts read errors among its requests, not beside them.
	s.Requests = total
	s.OK = max(0, total-non2xx)
	if non2xx > 0 {
		s.Codes[0] = non2xx // wrk does not say which statuses
	}
	s.Codes[200] = s.OK
	s.Elapsed = time.Duration(secs * float64(time.Second))
	s.RPS = float64(s.OK) / secs
	return s, nil
}

// parseWrkDuration reads wrk's "1.23ms", "456.78us", "1.02s", "2.00m".
func parseWrkDuration(v string) time.Duration {
	units := []struct {
		suffix string
		d      time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"m", time.Minute}, {"s", time.Second}}
	for _, u := range units {
		if strings.HasSuffix(v, u.suffix) {
			n, err := strconv.ParseFloat(strings.TrimSuffix(v, u.suffix), 64)
			if err != nil {
				return 0
			}
			return time.Duration(n * float64(u.d))
		}
	}
	return 0
}
