package api

import (
	"context"
	"net/http"
	"net/url"
)

// TokensRevoked is the answer of POST /endpoints/{e}/revokeTokens: the
// endpoint's new token generation (tokens issued before it are refused).
type TokensRevoked struct {
	Endpoint        string `json:"endpoint"`
	TokenGeneration int64  `json:"tokenGeneration"`
}

// RevokeTokens revokes every aml_token issued for the endpoint so far.
func (c *Client) RevokeTokens(ctx context.Context, endpoint string) (*TokensRevoked, error) {
	var out TokensRevoked
	_, err := c.sendJSON(ctx, http.MethodPost, "/endpoints/"+url.PathEscape(endpoint)+"/revokeTokens", nil, nil, &out)
	return &out, err
}
