package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// oidcOptions tune an OIDCVerifier; see the With* OIDCOption functions.
type oidcOptions struct {
	client       *http.Client
	extraIssuers []string
	now          func() time.Time
}

// An OIDCOption tunes an OIDCVerifier.
type OIDCOption func(*oidcOptions)

// WithHTTPClient sets the client that fetches the discovery document and the
// JWKS. Without it, http.DefaultClient.
func WithHTTPClient(c *http.Client) OIDCOption {
	return func(o *oidcOptions) { o.client = c }
}

// WithExtraIssuers accepts further iss values besides the discovery issuer.
// Microsoft Entra v1 access tokens (audience https://ml.azure.com, as Azure's
// aad_token uses) carry iss https://sts.windows.net/<tenant>/ while discovery
// says https://login.microsoftonline.com/<tenant>/v2.0. Without it, only the
// discovery issuer is accepted.
func WithExtraIssuers(iss ...string) OIDCOption {
	return func(o *oidcOptions) { o.extraIssuers = append(o.extraIssuers, iss...) }
}

// WithOIDCClock sets the verifier's clock. Without it, time.Now.
func WithOIDCClock(now func() time.Time) OIDCOption {
	return func(o *oidcOptions) { o.now = now }
}

// OIDCVerifier verifies aad_token credentials: JWT access tokens from an
// OpenID Connect issuer, found by discovery, signed with a key of its JWKS
// (fetched and refreshed by go-oidc), for one audience. Safe for concurrent use.
type OIDCVerifier struct {
	issuers  []string
	verifier *oidc.IDTokenVerifier
}

// NewOIDCVerifier discovers issuer (GET <issuer>/.well-known/openid-configuration)
// and returns a verifier accepting its tokens for audience (for Azure parity,
// "https://ml.azure.com"). ctx bounds discovery only.
func NewOIDCVerifier(ctx context.Context, issuer, audience string, options ...OIDCOption) (*OIDCVerifier, error) {
	var opts oidcOptions
	for _, o := range options {
		o(&opts)
	}
	if issuer == "" || audience == "" {
		return nil, errors.New("oidc verifier: issuer and audience are required")
	}
	if opts.client != nil {
		ctx = oidc.ClientContext(ctx, opts.client)
	}
	provider, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc discovery of %s: %w", issuer, err)
	}
	// Key fetches outlive ctx: give them a context that carries the client
	// but not ctx's cancellation.
	keyCtx := context.Background()
	if opts.client != nil {
		keyCtx = oidc.ClientContext(keyCtx, opts.client)
	}
	cfg := &oidc.Config{
		ClientID: audience,
		Now:      opts.now,
		// The issuer is checked here against the discovery issuer and
		// ExtraIssuers, below.
		SkipIssuerCheck: true,
	}
	return &OIDCVerifier{
		issuers:  append([]string{issuer}, opts.extraIssuers...),
		verifier: provider.VerifierContext(keyCtx, cfg),
	}, nil
}

// Verify checks rawToken's signature, audience, issuer and expiry. The error
// wraps ErrTokenExpired or ErrTokenInvalid.
func (v *OIDCVerifier) Verify(ctx context.Context, rawToken string) error {
	tok, err := v.verifier.Verify(ctx, rawToken)
	if err != nil {
		var expired *oidc.TokenExpiredError
		if errors.As(err, &expired) {
			return fmt.Errorf("%w: %w", ErrTokenExpired, err)
		}
		return fmt.Errorf("%w: %w", ErrTokenInvalid, err)
	}
	if !slices.Contains(v.issuers, tok.Issuer) {
		return fmt.Errorf("%w: issuer %q is not accepted", ErrTokenInvalid, tok.Issuer)
	}
	return nil
}
