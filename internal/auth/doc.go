// Package auth owns plumbline's secrets: endpoint keys, aml_token issuing and
// verification (HS256 JWTs bound to one endpoint), aad_token verification
// against an OpenID Connect issuer, and the admin token file.
//
// The gateway and the API server consume it through interfaces they declare
// themselves (gateway.TokenVerifier, gateway.OIDCVerifier). This package
// must not import any other plumbline package: it sits below the gateway and
// the API server, and knows nothing of the store (the caller keeps the
// signing secret and the keys).
package auth
