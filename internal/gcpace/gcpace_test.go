package gcpace

import (
	"context"
	"os"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	for _, tc := range []struct {
		name           string
		live, headroom uint64
		want           int
	}{
		{"empty heap", 0, 16 << 20, 1000},
		{"small heap", 4 << 20, 16 << 20, 400},
		{"tiny heap capped", 1 << 20, 64 << 20, 1000},
		{"heap as large as the headroom", 16 << 20, 16 << 20, 100},
		{"large heap keeps Go's default", 200 << 20, 16 << 20, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percent(tc.live, tc.headroom); got != tc.want {
				t.Errorf("Percent(%d, %d) = %d, want %d", tc.live, tc.headroom, got, tc.want)
			}
		})
	}
}

func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// waitFor collects until cond holds (the pacer runs after collections).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		runtime.GC()
		if cond() {
			return
		}
	}
	t.Fatalf("%s: GOGC is %d", what, gogc())
}

func TestStartPacesAndRestores(t *testing.T) {
	t.Setenv("GOGC", "") // registers the restoration; LookupEnv must not see it at all
	if err := os.Unsetenv("GOGC"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// This test binary keeps far less than 1 GiB live: the pacer raises
	// GOGC to its cap.
	if !Start(ctx, 1<<30) {
		t.Fatal("Start reported GOGC set in the environment")
	}
	waitFor(t, "after collections with a small live heap", func() bool { return gogc() == maxPercent })
	cancel()
	waitFor(t, "after the context ended", func() bool { return gogc() == 100 })
}

func TestOperatorGOGCWins(t *testing.T) {
	t.Setenv("GOGC", "100")
	if Start(context.Background(), 1<<30) {
		t.Fatal("Start paced the collector although GOGC is set")
	}
	runtime.GC()
	if got := gogc(); got != 100 {
		t.Fatalf("GOGC = %d, want 100 (the environment's)", got)
	}
}
