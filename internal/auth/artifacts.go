package auth

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// fetchAudience is the aud claim of artifact tokens: no other verifier
// (aml_token, admin) accepts them, and they accept no other token.
const fetchAudience = "plumbline-fetch"

// ArtifactTokens issues and verifies the tokens `plumbline fetch` presents
// from a pod's storage initializer: each lets its holder read exactly the
// artifacts (content digests) it lists, nothing else of the API.
type ArtifactTokens struct {
	secret []byte
	now    func() time.Time
}

type artifactClaims struct {
	Artifacts []string `json:"art"`
	jwt.RegisteredClaims
}

// NewArtifactTokens returns an issuer with an HMAC secret of at least
// MinSigningSecret bytes; now is the clock (nil: time.Now).
func NewArtifactTokens(secret []byte, now func() time.Time) (*ArtifactTokens, error) {
	if len(secret) < MinSigningSecret {
		return nil, fmt.Errorf("artifact token secret: %d bytes, want at least %d", len(secret), MinSigningSecret)
	}
	if now == nil {
		now = time.Now
	}
	return &ArtifactTokens{secret: slices.Clone(secret), now: now}, nil
}

// Issue returns a token for subject (the deployment, for the record) that
// allows reading digests until ttl has passed.
func (a *ArtifactTokens) Issue(subject string, digests []string, ttl time.Duration) (string, error) {
	if len(digests) == 0 {
		return "", errors.New("artifact token: no artifact to allow")
	}
	now := a.now()
	c := artifactClaims{
		Artifacts: slices.Clone(digests),
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    tokenIssuerName,
			Subject:   subject,
			Audience:  jwt.ClaimStrings{fetchAudience},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(a.secret)
}

// Allows checks token (signature, audience, expiry) and that it lists
// digest. It returns ErrTokenExpired, ErrTokenInvalid, or an error saying
// the artifact is not one the token allows.
func (a *ArtifactTokens) Allows(token, digest string) error {
	var c artifactClaims
	_, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) { return a.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithAudience(fetchAudience), jwt.WithIssuer(tokenIssuerName),
		jwt.WithExpirationRequired(), jwt.WithLeeway(DefaultTokenLeeway), jwt.WithTimeFunc(a.now))
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return fmt.Errorf("artifact token: %w", ErrTokenExpired)
	case err != nil:
		return fmt.Errorf("artifact token: %w", ErrTokenInvalid)
	}
	if !slices.Contains(c.Artifacts, digest) {
		return fmt.Errorf("artifact token of %s does not allow %s: %w", c.Subject, digest, ErrTokenInvalid)
	}
	return nil
}
