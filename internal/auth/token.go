package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
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
	// ErrTokenRevoked: the token was issued for this endpoint name but
	// before its tokens were revoked, or for an earlier endpoint of that
	// name (deleted since). Errors wrapping it wrap ErrTokenInvalid too.
	ErrTokenRevoked = errors.New("token revoked")
)

// Subject is what an aml_token is bound to: the endpoint's name (the aud
// claim), its identity (an ID that a delete and re-create changes) and its
// token generation (which revoking the endpoint's tokens increments). Each
// subject has its own signing key, derived from the issuer's secret, so a
// token signed for one subject never verifies for another.
type Subject struct {
	Endpoint   string
	ID         string
	Generation int64
}

// claims are an aml_token's: the registered ones plus the subject's ID and
// generation (informational: the signing key already binds them).
type claims struct {
	jwt.RegisteredClaims
	EndpointID string `json:"eid,omitempty"`
	Generation int64  `json:"gen,omitempty"`
}

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
// "plumbline" and aud the endpoint name, signed with a key derived from the
// issuer's secret and the Subject (endpoint name, ID, token generation), so
// a token for endpoint A never works on B, nor on an A deleted and created
// again, nor after A's tokens were revoked. Rotating the signing secret
// invalidates every token. Safe for concurrent use.
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

// Issue returns a token for the endpoint named endpoint with no ID and
// generation 0 (IssueFor with Subject{Endpoint: endpoint}).
func (ti *TokenIssuer) Issue(endpoint string, now time.Time) (Token, error) {
	return ti.IssueFor(Subject{Endpoint: endpoint}, now)
}

// IssueFor returns a token for sub (endpoint names are case-insensitive),
// issued at now.
func (ti *TokenIssuer) IssueFor(sub Subject, now time.Time) (Token, error) {
	endpoint := strings.ToLower(sub.Endpoint)
	if endpoint == "" {
		return Token{}, errors.New("issue token: empty endpoint name")
	}
	now = now.UTC().Truncate(time.Second) // JWT times have second resolution
	exp := now.Add(ti.opts.lifetime)
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    tokenIssuerName,
			Audience:  jwt.ClaimStrings{endpoint},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
		EndpointID: sub.ID,
		Generation: sub.Generation,
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(ti.subjectKey(sub))
	if err != nil {
		return Token{}, fmt.Errorf("issue token for %s: %w", endpoint, err)
	}
	return Token{AccessToken: s, ExpiryTimeUtc: exp, RefreshAfterTimeUtc: now.Add(ti.opts.refreshAfter)}, nil
}

// VerifyEndpointToken is VerifyToken for Subject{Endpoint: endpoint}.
func (ti *TokenIssuer) VerifyEndpointToken(endpoint, token string) error {
	return ti.VerifyToken(Subject{Endpoint: endpoint}, token)
}

// VerifyToken checks that token is a valid aml_token for sub: HS256
// signature with sub's key (alg none and every other algorithm are
// refused), iss "plumbline", aud the endpoint, and exp/nbf/iat within the
// leeway. The error wraps ErrTokenExpired or ErrTokenInvalid (and
// ErrTokenRevoked when the token was issued for an earlier identity or
// generation of the endpoint).
func (ti *TokenIssuer) VerifyToken(sub Subject, token string) error {
	if sub.Endpoint == "" {
		return fmt.Errorf("%w: empty endpoint name", ErrTokenInvalid)
	}
	opts := append(ti.parseOpts[:len(ti.parseOpts):len(ti.parseOpts)], jwt.WithAudience(strings.ToLower(sub.Endpoint)))
	key := ti.subjectKey(sub)
	_, err := jwt.ParseWithClaims(token, &claims{}, func(t *jwt.Token) (any, error) {
		if t.Method != jwt.SigningMethodHS256 {
			return nil, fmt.Errorf("unexpected signing method %v", t.Header["alg"])
		}
		return key, nil
	}, opts...)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jwt.ErrTokenExpired):
		return fmt.Errorf("%w: %w", ErrTokenExpired, err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid) && ti.revoked(sub, token):
		return fmt.Errorf("%w: %w: it was issued before the endpoint's tokens were revoked, or for an endpoint of that name deleted since", ErrTokenInvalid, ErrTokenRevoked)
	default:
		return fmt.Errorf("%w: %w", ErrTokenInvalid, err)
	}
}

// revoked tells, for the error message only, whether a token whose
// signature failed was issued by this issuer for an earlier identity or
// generation of sub's endpoint: it verifies it with that subject's key.
func (ti *TokenIssuer) revoked(sub Subject, token string) bool {
	var c claims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &c); err != nil {
		return false
	}
	old := Subject{Endpoint: sub.Endpoint, ID: c.EndpointID, Generation: c.Generation}
	if old.ID == sub.ID && old.Generation >= sub.Generation {
		return false
	}
	_, err := jwt.ParseWithClaims(token, &claims{}, func(*jwt.Token) (any, error) { return ti.subjectKey(old), nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithoutClaimsValidation())
	return err == nil
}

// subjectKey derives sub's signing key from the secret:
// HMAC-SHA256(secret, "plumbline aml_token\x00" id "\x00" generation).
// The endpoint name is bound by the aud claim.
func (ti *TokenIssuer) subjectKey(sub Subject) []byte {
	m := hmac.New(sha256.New, ti.secret)
	m.Write([]byte("plumbline aml_token\x00"))
	m.Write([]byte(sub.ID))
	m.Write([]byte{0})
	m.Write([]byte(strconv.FormatInt(sub.Generation, 10)))
	return m.Sum(nil)
}
