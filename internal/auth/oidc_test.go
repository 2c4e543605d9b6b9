package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// oidcIssuer is an OpenID Connect issuer stood up for a test: a discovery
// document and a JWKS with one RSA key.
type oidcIssuer struct {
	url string
	key *rsa.PrivateKey
	kid string
}

func newOIDCIssuer(t *testing.T) *oidcIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	iss := &oidcIssuer{key: key, kid: "test-key-1"}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                iss.url,
			"jwks_uri":                              iss.url + "/keys",
			"authorization_endpoint":                iss.url + "/authorize",
			"token_endpoint":                        iss.url + "/token",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		b64 := base64.RawURLEncoding.EncodeToString
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "use": "sig", "alg": "RS256", "kid": iss.kid,
			"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
		}}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	iss.url = srv.URL
	return iss
}

func (o *oidcIssuer) token(t *testing.T, key *rsa.PrivateKey, c jwt.RegisteredClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"] = o.kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOIDCVerifier(t *testing.T) {
	iss := newOIDCIssuer(t)
	const aud = "https://ml.azure.com"
	ctx := context.Background()
	v, err := NewOIDCVerifier(ctx, iss.url, aud, WithExtraIssuers("https://sts.example/tenant/"))
	if err != nil {
		t.Fatalf("NewOIDCVerifier: %v", err)
	}
	now := time.Now()
	claims := func(mut func(*jwt.RegisteredClaims)) jwt.RegisteredClaims {
		c := jwt.RegisteredClaims{
			Issuer: iss.url, Audience: jwt.ClaimStrings{aud}, Subject: "user",
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
		}
		if mut != nil {
			mut(&c)
		}
		return c
	}
	stranger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"good", iss.token(t, iss.key, claims(nil)), nil},
		{"extra issuer", iss.token(t, iss.key, claims(func(c *jwt.RegisteredClaims) { c.Issuer = "https://sts.example/tenant/" })), nil},
		{"wrong audience", iss.token(t, iss.key, claims(func(c *jwt.RegisteredClaims) { c.Audience = jwt.ClaimStrings{"https://management.azure.com"} })), ErrTokenInvalid},
		{"wrong issuer", iss.token(t, iss.key, claims(func(c *jwt.RegisteredClaims) { c.Issuer = "https://evil.example" })), ErrTokenInvalid},
		{"expired", iss.token(t, iss.key, claims(func(c *jwt.RegisteredClaims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Minute)) })), ErrTokenExpired},
		{"signed by another key", iss.token(t, stranger, claims(nil)), ErrTokenInvalid},
		{"garbage", "a.b.c", ErrTokenInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := v.Verify(ctx, tt.token)
			if tt.want == nil && err != nil {
				t.Errorf("got %v, want nil", err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("got %v, want an error wrapping %v", err, tt.want)
			}
		})
	}
}

func TestOIDCVerifierDiscoveryFails(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	if _, err := NewOIDCVerifier(context.Background(), srv.URL, "aud"); err == nil {
		t.Error("got nil error for an issuer without discovery, want one")
	}
	if _, err := NewOIDCVerifier(context.Background(), "", "aud"); err == nil {
		t.Error("got nil error for an empty issuer, want one")
	}
}
