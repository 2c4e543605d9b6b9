package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"
)

// keyBytes is the entropy of a key: 256 bits.
const keyBytes = 32

// NewKey returns a fresh endpoint or admin key: 32 random bytes, base64url
// without padding (43 characters, safe in URLs, headers and shells).
func NewKey() (string, error) {
	var b [keyBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("new key: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// EqualSecret reports whether a and b are the same secret, in time that
// depends on neither their contents nor their lengths: it compares their
// SHA-256 sums in constant time. Two empty strings are not equal: an unset
// secret never matches.
func EqualSecret(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// BearerToken returns the credential of an "Authorization: Bearer <token>"
// header value; the scheme is case-insensitive. ok is false for any other
// scheme, an empty token or one that is not valid UTF-8.
func BearerToken(h string) (token string, ok bool) {
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	tok := strings.TrimSpace(h[len(prefix):])
	if tok == "" || !utf8.ValidString(tok) {
		return "", false
	}
	return tok, true
}

// AuthorizedBearer reports whether an Authorization header value carries
// the bearer secret want, compared in constant time. An empty want never
// matches.
func AuthorizedBearer(header, want string) bool {
	tok, ok := BearerToken(header)
	return ok && want != "" && EqualSecret(tok, want)
}
