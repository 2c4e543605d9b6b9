package auth

import (
	"encoding/base64"
	"testing"
)

func TestNewKey(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		k, err := NewKey()
		if err != nil {
			t.Fatal(err)
		}
		b, err := base64.RawURLEncoding.DecodeString(k)
		if err != nil || len(b) != 32 {
			t.Fatalf("NewKey() = %q: decodes to %d bytes (%v), want 32 bytes of base64url", k, len(b), err)
		}
		if seen[k] {
			t.Fatalf("NewKey() repeated %q", k)
		}
		seen[k] = true
	}
}

func TestEqualSecret(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		want bool
	}{
		{"equal", "s3cret", "s3cret", true},
		{"different", "s3cret", "s3creT", false},
		{"prefix", "s3cret", "s3cre", false},
		{"longer", "s3cret", "s3cret-and-more", false},
		{"both empty", "", "", false},
		{"one empty", "", "x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := EqualSecret(tt.a, tt.b); got != tt.want {
				t.Errorf("EqualSecret(%q, %q): got %v, want %v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}
