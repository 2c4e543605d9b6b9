package auth

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Errors of token verification. Verifiers wrap one of them, so a caller can
// say "token expired" without matching strings.
var (
	// ErrTokenExpired: the token was valid once and its exp has passed.
	ErrTokenExpired = errors.New("token expired")
	// ErrTokenInvalid: anything else (bad signature, algorithm, audience,
	// issuer, malformed, not yet valid).
	ErrTokenInvalid = errors.New("invalid token")
)

// tokenIssuerName is the iss claim of every aml_token.
const tokenIssuerName = "plumbline"

// MinSigningSecret is the shortest signing secret NewTokenIssuer accepts.
const MinSigningSecret = 32

// Defaults of a TokenIssuer.
const (
	DefaultTokenLifetime = time.Hour
	DefaultTokenLeeway   = 30 * time.Second
)

// tokenOptions tune a TokenIssuer; see the With* TokenOption functions.
type tokenOptions struct {
	lifetime     time.Duration
	refreshAfter time.Duration
	leeway       time.Duration
	now          func() time.Time
}

// A TokenOption tunes a TokenIssuer.
type TokenOption func(*tokenOptions)

// WithTokenLifetime sets how long an issued token is valid. Without it, or
// with d <= 0, DefaultTokenLifetime (1 h).
func WithTokenLifetime(d time.Duration) TokenOption {
	return func(o *tokenOptions) { o.lifetime = d }
}

// WithRefreshAfter sets how long after issue a client should fetch a new
// token (refreshAfterTimeUtc). Without it, or with d <= 0 or d past the
// lifetime, half the lifetime.
func WithRefreshAfter(d time.Duration) TokenOption {
	return func(o *tokenOptions) { o.refreshAfter = d }
}

// WithTokenLeeway sets the clock skew tolerated on exp, nbf and iat when
// verifying. Without it, DefaultTokenLeeway (30 s); d <= 0 means none.
func WithTokenLeeway(d time.Duration) TokenOption {
	return func(o *tokenOptions) { o.leeway = max(d, 0) }
}

// WithTokenClock sets the verifier's clock. Without it, time.Now.
func WithTokenClock(now func() time.Time) TokenOption {
	return func(o *tokenOptions) { o.now = now }
}

// Token is an issued aml_token, the body of Azure's
// POST …/onlineEndpoints/<name>/token.
type Token struct {
	AccessToken         string
	ExpiryTimeUtc       time.Time
	RefreshAfterTimeUtc time.Time
}

// TokenIssuer issues and verifies aml_token credentials: HS256 JWTs with iss
// "plumbline" and aud the endpoint name, so a token for endpoint A never
// works on B. Rotating the signing secret invalidates every token. Safe for
// concurrent use.
type TokenIssuer struct {
	secret    []byte
	opts      tokenOptions
	parseOpts []jwt.ParserOption // shared; never appended to in place
}

// NewTokenIssuer returns an issuer signing with secret (at least 32 bytes;
// the server keeps it in its store). The secret is copied. Tokens live 1 h
// and should be refreshed after 30 min unless options say otherwise.
func NewTokenIssuer(secret []byte, options ...TokenOption) (*TokenIssuer, error) {
	if len(secret) < MinSigningSecret {
		return nil, fmt.Errorf("token signing secret is %d bytes; it must be at least %d", len(secret), MinSigningSecret)
	}
	opts := tokenOptions{leeway: DefaultTokenLeeway, now: time.Now}
	for _, o := range options {
		o(&opts)
	}
	if opts.lifetime <= 0 {
		opts.lifetime = DefaultTokenLifetime
	}
	if opts.refreshAfter <= 0 || opts.refreshAfter > opts.lifetime {
		opts.refreshAfter = opts.lifetime / 2
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	return &TokenIssuer{
		secret: append([]byte(nil), secret...),
		opts:   opts,
		parseOpts: []jwt.ParserOption{
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithIssuer(tokenIssuerName),
			jwt.WithLeeway(opts.leeway),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithTimeFunc(opts.now),
		},
	}, nil
}

// Issue returns a token for endpoint (names are case-insensitive), issued
// at now.
func (ti *TokenIssuer) Issue(endpoint string, now time.Time) (Token, error) {
	endpoint = strings.ToLower(endpoint)
	if endpoint == "" {
		return Token{}, errors.New("issue token: empty endpoint name")
	}
	now = now.UTC().Truncate(time.Second) // JWT times have second resolution
	exp := now.Add(ti.opts.lifetime)
	claims := jwt.RegisteredClaims{
		Issuer:    tokenIssuerName,
		Audience:  jwt.ClaimStrings{endpoint},
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(ti.secret)
	if err != nil {
		return Token{}, fmt.Errorf("issue token for %s: %w", endpoint, err)
	}
	return Token{AccessToken: s, ExpiryTimeUtc: exp, RefreshAfterTimeUtc: now.Add(ti.opts.refreshAfter)}, nil
}

// VerifyEndpointToken checks that token is a valid aml_token for endpoint:
// HS256 signature with this issuer's secret (alg none and every other
// algorithm are refused), iss "plumbline", aud endpoint, and exp/nbf/iat
// within the leeway. The error wraps ErrTokenExpired or ErrTokenInvalid.
func (ti *TokenIssuer) VerifyEndpointToken(endpoint, token string) error {
	if endpoint == "" {
		return fmt.Errorf("%w: empty endpoint name", ErrTokenInvalid)
	}
	opts := append(ti.parseOpts[:len(ti.parseOpts):len(ti.parseOpts)], jwt.WithAudience(strings.ToLower(endpoint)))
	_, err := jwt.ParseWithClaims(token, &jwt.RegisteredClaims{}, ti.key, opts...)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jwt.ErrTokenExpired):
		return fmt.Errorf("%w: %w", ErrTokenExpired, err)
	default:
		return fmt.Errorf("%w: %w", ErrTokenInvalid, err)
	}
}

func (ti *TokenIssuer) key(t *jwt.Token) (any, error) {
	if t.Method != jwt.SigningMethodHS256 {
		return nil, fmt.Errorf("unexpected signing method %v", t.Header["alg"])
	}
	return ti.secret, nil
}
