package server

import (
	"strings"
	"testing"
)

// --http1 takes std (the default) or fast; anything else names the flag
// and the choices.
func TestHTTP1Mode(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"", HTTP1Std, ""},
		{"std", HTTP1Std, ""},
		{"fast", HTTP1Fast, ""},
		{"quick", "", `--http1 "quick": want std`},
	} {
		cfg, err := Config{DataDir: t.TempDir(), HTTP1: tc.in}.withDefaults()
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("--http1 %q: got error %v, want one containing %q", tc.in, err, tc.err)
			}
		case err != nil:
			t.Errorf("--http1 %q: %v", tc.in, err)
		case cfg.HTTP1 != tc.want:
			t.Errorf("--http1 %q: got %q, want %q", tc.in, cfg.HTTP1, tc.want)
		}
	}
}
