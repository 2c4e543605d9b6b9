package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func TestNewTokenIssuerSecretLength(t *testing.T) {
	if _, err := NewTokenIssuer([]byte("short")); err == nil {
		t.Error("NewTokenIssuer(5 bytes): got nil error, want one")
	}
	if _, err := NewTokenIssuer(testSecret); err != nil {
		t.Errorf("NewTokenIssuer(32 bytes): %v", err)
	}
}

func TestIssueTimes(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		opts        []TokenOption
		wantExp     time.Duration
		wantRefresh time.Duration
	}{
		{"defaults", nil, time.Hour, 30 * time.Minute},
		{"lifetime", []TokenOption{WithTokenLifetime(4 * time.Hour)}, 4 * time.Hour, 2 * time.Hour},
		{"refresh", []TokenOption{WithRefreshAfter(10 * time.Minute)}, time.Hour, 10 * time.Minute},
		{"refresh past lifetime", []TokenOption{WithRefreshAfter(2 * time.Hour)}, time.Hour, 30 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ti, err := NewTokenIssuer(testSecret, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := ti.Issue("ep", now)
			if err != nil {
				t.Fatal(err)
			}
			if got := tok.ExpiryTimeUtc.Sub(now); got != tt.wantExp {
				t.Errorf("expiry: got now+%v, want now+%v", got, tt.wantExp)
			}
			if got := tok.RefreshAfterTimeUtc.Sub(now); got != tt.wantRefresh {
				t.Errorf("refresh after: got now+%v, want now+%v", got, tt.wantRefresh)
			}
			if tok.ExpiryTimeUtc.Location() != time.UTC {
				t.Errorf("expiry is not UTC: %v", tok.ExpiryTimeUtc)
			}
		})
	}
}

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifyEndpointToken(t *testing.T) {
	now := time.Now()
	ti, err := NewTokenIssuer(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewTokenIssuer([]byte(strings.Repeat("z", 32)))
	issue := func(ti *TokenIssuer, ep string, at time.Time) string {
		tok, err := ti.Issue(ep, at)
		if err != nil {
			t.Fatal(err)
		}
		return tok.AccessToken
	}
	claims := func(mut func(*jwt.RegisteredClaims)) jwt.RegisteredClaims {
		c := jwt.RegisteredClaims{
			Issuer: "plumbline", Audience: jwt.ClaimStrings{"ep"},
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
		}
		if mut != nil {
			mut(&c)
		}
		return c
	}
	// Hand-made tokens are signed with the key the issuer derives for
	// endpoint "ep", so each case fails for its own reason only.
	epKey := ti.subjectKey(Subject{Endpoint: "ep"})
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		endpoint string
		token    string
		want     error // nil, ErrTokenExpired or ErrTokenInvalid
	}{
		{"good", "ep", issue(ti, "ep", now), nil},
		{"endpoint names are case-insensitive", "EP", issue(ti, "Ep", now), nil},
		{"within the leeway", "ep", issue(ti, "ep", now.Add(-time.Hour-10*time.Second)), nil},
		{"expired", "ep", issue(ti, "ep", now.Add(-2*time.Hour)), ErrTokenExpired},
		{"another endpoint", "other", issue(ti, "ep", now), ErrTokenInvalid},
		{"another secret", "ep", issue(other, "ep", now), ErrTokenInvalid},
		{"not yet valid", "ep", issue(ti, "ep", now.Add(time.Hour)), ErrTokenInvalid},
		{"alg none", "ep", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil)), ErrTokenInvalid},
		{"hand-made with the right key", "ep", sign(t, jwt.SigningMethodHS256, epKey, claims(nil)), nil},
		{"signed with the raw secret", "ep", sign(t, jwt.SigningMethodHS256, testSecret, claims(nil)), ErrTokenInvalid},
		{"alg HS512 with the right key", "ep", sign(t, jwt.SigningMethodHS512, epKey, claims(nil)), ErrTokenInvalid},
		{"alg RS256", "ep", sign(t, jwt.SigningMethodRS256, rsaKey, claims(nil)), ErrTokenInvalid},
		{"wrong issuer", "ep", sign(t, jwt.SigningMethodHS256, epKey, claims(func(c *jwt.RegisteredClaims) { c.Issuer = "azure" })), ErrTokenInvalid},
		{"no expiry", "ep", sign(t, jwt.SigningMethodHS256, epKey, claims(func(c *jwt.RegisteredClaims) { c.ExpiresAt = nil })), ErrTokenInvalid},
		{"no audience", "ep", sign(t, jwt.SigningMethodHS256, epKey, claims(func(c *jwt.RegisteredClaims) { c.Audience = nil })), ErrTokenInvalid},
		{"malformed", "ep", "not.a.jwt", ErrTokenInvalid},
		{"empty", "ep", "", ErrTokenInvalid},
		{"empty endpoint", "", issue(ti, "ep", now), ErrTokenInvalid},
		{"tampered payload", "ep", tamper(issue(ti, "ep", now)), ErrTokenInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ti.VerifyEndpointToken(tt.endpoint, tt.token)
			switch {
			case tt.want == nil && err != nil:
				t.Errorf("got %v, want nil", err)
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Errorf("got %v, want an error wrapping %v", err, tt.want)
			case errors.Is(err, ErrTokenExpired) && errors.Is(err, ErrTokenInvalid):
				t.Errorf("got %v: both expired and invalid", err)
			}
		})
	}
}

// tamper swaps the audience in a token's payload for another endpoint's,
// keeping the signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	payload, _ := jwt.NewParser().DecodeSegment(parts[1])
	forged := strings.Replace(string(payload), `"ep"`, `"xx"`, 1)
	parts[1] = (&jwt.Token{}).EncodeSegment([]byte(forged))
	return strings.Join(parts, ".")
}

// TestTokenRevocation is defect 3: a token is bound to the endpoint's
// identity (which a delete and re-create changes) and its token generation
// (which revoking increments); either change refuses every token issued
// before, saying it was revoked.
func TestTokenRevocation(t *testing.T) {
	ti, err := NewTokenIssuer(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	v1 := Subject{Endpoint: "ep", ID: "3f0c…first", Generation: 0}
	tok, err := ti.IssueFor(v1, now)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		sub     Subject
		revoked bool
	}{
		{"same subject", v1, false},
		{"tokens revoked (generation 1)", Subject{Endpoint: "ep", ID: v1.ID, Generation: 1}, true},
		{"endpoint deleted and created again (new ID)", Subject{Endpoint: "ep", ID: "9a41…second"}, true},
		{"another endpoint", Subject{Endpoint: "other", ID: v1.ID}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ti.VerifyToken(tt.sub, tok.AccessToken)
			if tt.sub == v1 {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrTokenInvalid) {
				t.Fatalf("got %v, want ErrTokenInvalid", err)
			}
			if got := errors.Is(err, ErrTokenRevoked); got != tt.revoked {
				t.Errorf("errors.Is(err, ErrTokenRevoked): got %v, want %v (%v)", got, tt.revoked, err)
			}
		})
	}
	// A token of the new generation works, and the old generation's
	// key cannot be used to forge one: the generation is in the key.
	v2 := Subject{Endpoint: "ep", ID: v1.ID, Generation: 1}
	fresh, err := ti.IssueFor(v2, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := ti.VerifyToken(v2, fresh.AccessToken); err != nil {
		t.Errorf("fresh token: %v", err)
	}
	forged := sign(t, jwt.SigningMethodHS256, ti.subjectKey(v1), claims{
		RegisteredClaims: jwt.RegisteredClaims{Issuer: "plumbline", Audience: jwt.ClaimStrings{"ep"},
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))},
		EndpointID: v1.ID, Generation: 1,
	})
	if err := ti.VerifyToken(v2, forged); !errors.Is(err, ErrTokenInvalid) {
		t.Errorf("generation claim raised under the old key: got %v, want ErrTokenInvalid", err)
	}
}

// FuzzVerifyToken: no string verifies unless this issuer issued it for that
// subject, and none makes verification panic.
func FuzzVerifyToken(f *testing.F) {
	ti, err := NewTokenIssuer(testSecret)
	if err != nil {
		f.Fatal(err)
	}
	sub := Subject{Endpoint: "ep", ID: "id", Generation: 3}
	tok, err := ti.IssueFor(sub, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tok.AccessToken, "ep", "id", int64(3))
	f.Add(tok.AccessToken, "ep", "id", int64(2))
	f.Add("e30.e30.", "ep", "", int64(0))
	f.Add("not a token", "x", "y", int64(-1))
	f.Fuzz(func(t *testing.T, token, endpoint, id string, gen int64) {
		err := ti.VerifyToken(Subject{Endpoint: endpoint, ID: id, Generation: gen}, token)
		// Only tokens this issuer signed verify, and it signed them for one
		// subject (the seed's, issued by whichever process built the
		// corpus).
		if err == nil && (!strings.EqualFold(endpoint, "ep") || id != "id" || gen != 3) {
			t.Fatalf("token %q verified for %q %q %d", token, endpoint, id, gen)
		}
	})
}
