package gateway

import (
	"crypto/rand"

	"github.com/google/uuid"

	"github.com/plumbline/plumbline/internal/auth"
)

// maxClientRequestID is Azure's cut for x-ms-client-request-id.
const maxClientRequestID = 40

// maxUserAgent is the access log's cut for User-Agent, as in Azure's
// AmlOnlineEndpointTrafficLog.
const maxUserAgent = 70

// newRequestID returns a fresh GUID for x-request-id. The client's value is
// never used: Azure overrides it "to ensure it's a valid GUID".
func newRequestID() string {
	// uuid.New, minus a heap copy of the random bytes.
	var u uuid.UUID
	_, _ = rand.Read(u[:])      // never fails (crypto/rand: "Read ... never returns an error")
	u[6] = (u[6] & 0x0f) | 0x40 // version 4
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 4122 variant
	return u.String()
}

// sanitizeClientRequestID keeps only [A-Za-z0-9_-] of s and cuts the result to
// 40 characters, as Azure does for x-ms-client-request-id. It does not
// allocate when s is already clean.
func sanitizeClientRequestID(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if !clientIDByte(s[i]) {
			clean = false
			break
		}
	}
	if clean {
		if len(s) > maxClientRequestID {
			return s[:maxClientRequestID]
		}
		return s
	}
	var buf [maxClientRequestID]byte
	n := 0
	for i := 0; i < len(s) && n < maxClientRequestID; i++ {
		if c := s[i]; clientIDByte(c) {
			buf[n] = c
			n++
		}
	}
	return string(buf[:n])
}

func clientIDByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// cutUserAgent cuts s to at most 70 runes without splitting one.
func cutUserAgent(s string) string {
	if len(s) <= maxUserAgent {
		return s
	}
	n := 0
	for i := range s {
		if n == maxUserAgent {
			return s[:i]
		}
		n++
	}
	return s
}

// bearerToken returns the credential of an "Authorization: Bearer <token>"
// header value; the scheme is case-insensitive.
func bearerToken(h string) (string, bool) { return auth.BearerToken(h) }
