package auth

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestArtifactTokens(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	a, err := NewArtifactTokens(bytes.Repeat([]byte("k"), 32), clock)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := a.Issue("e1/blue", []string{"sha256:aa", "sha256:bb"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"sha256:aa", "sha256:bb"} {
		if err := a.Allows(tok, d); err != nil {
			t.Errorf("Allows(%s) = %v, want nil", d, err)
		}
	}
	if err := a.Allows(tok, "sha256:cc"); !errors.Is(err, ErrTokenInvalid) {
		t.Errorf("Allows(an artifact not listed) = %v, want ErrTokenInvalid", err)
	}
	other, _ := NewArtifactTokens(bytes.Repeat([]byte("x"), 32), clock)
	if err := other.Allows(tok, "sha256:aa"); !errors.Is(err, ErrTokenInvalid) {
		t.Errorf("Allows(token of another secret) = %v, want ErrTokenInvalid", err)
	}
	// An aml_token (another audience) is not an artifact token.
	ti, _ := NewTokenIssuer(bytes.Repeat([]byte("k"), 32), WithTokenClock(clock))
	aml, _ := ti.Issue("e1", now)
	if err := a.Allows(aml.AccessToken, "sha256:aa"); !errors.Is(err, ErrTokenInvalid) {
		t.Errorf("Allows(aml_token) = %v, want ErrTokenInvalid", err)
	}
	now = now.Add(2 * time.Hour)
	if err := a.Allows(tok, "sha256:aa"); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("Allows(after its lifetime) = %v, want ErrTokenExpired", err)
	}
	if _, err := a.Issue("e1/blue", nil, time.Hour); err == nil {
		t.Error("Issue(no artifact) succeeded")
	}
	if _, err := NewArtifactTokens([]byte("short"), nil); err == nil {
		t.Error("NewArtifactTokens(short secret) succeeded")
	}
}
