package harness

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/plumbline/plumbline/bench/internal/load"
)

// warmUpLimit bounds a warm-up: a first request to a fresh R process can
// take seconds on a loaded machine (R compiles on first use), but one that
// never answers within this long is broken.
const warmUpLimit = 60 * time.Second

// warmUp runs closed loops of growing length (first, then 2×, 4×… up to
// 8 s each) until one request succeeds or warmUpLimit passes. A fixed
// short window fails on a loaded machine when the first answers simply
// take longer than the window; what was seen is reported either way.
func warmUp(ctx context.Context, what string, cl load.ClosedLoop, first time.Duration) error {
	start := time.Now()
	var seen []string
	for d := first; ; d = min(2*d, 8*time.Second) {
		cl.Duration = d
		st := cl.Run(ctx)
		if st.OK > 0 {
			return nil
		}
		seen = append(seen, fmt.Sprintf("%s: %s %v", d, orNone(st.CodesString()), st.ErrorSamples))
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("warm-up of %s: %w", what, err)
		}
		if time.Since(start) > warmUpLimit {
			return fmt.Errorf("warm-up of %s: no successful request in %s (windows tried, with the answers seen: %s)",
				what, time.Since(start).Round(time.Second), strings.Join(seen, "; "))
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "no answer"
	}
	return s
}
