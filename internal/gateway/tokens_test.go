package gateway

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/auth"
)

// TestTokenBoundToIdentityAndGeneration: the gateway accepts an aml_token
// only for the endpoint identity and token generation of the snapshot it
// routes by, so revoking (a new generation) or deleting and creating the
// endpoint again (a new ID) refuses the tokens issued before.
func TestTokenBoundToIdentityAndGeneration(t *testing.T) {
	issuer, err := auth.NewTokenIssuer([]byte(strings.Repeat("s", 32)))
	if err != nil {
		t.Fatal(err)
	}
	ok := backend(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	g, _, front := newTestGateway(t, Config{Tokens: issuer})
	route := func(id string, gen int64) {
		ep := endpoint("tok", dep("blue", ok))
		ep.AuthMode, ep.ID, ep.TokenGeneration = "aml_token", id, gen
		g.Update(snapshot(ep))
	}
	tok, err := issuer.IssueFor(auth.Subject{Endpoint: "tok", ID: "id-1", Generation: 0}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name       string
		id         string
		gen        int64
		wantStatus int
	}{
		{"issued for this identity and generation", "id-1", 0, 200},
		{"tokens revoked", "id-1", 1, 401},
		{"endpoint deleted and created again", "id-2", 0, 401},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			route(st.id, st.gen)
			res, body := call(t, front, "POST", "/endpoints/tok/score", bearer(tok.AccessToken), "{}")
			if res.StatusCode != st.wantStatus {
				t.Fatalf("status: got %d, want %d (%s)", res.StatusCode, st.wantStatus, body)
			}
			if st.wantStatus == 401 && !strings.Contains(decodeError(t, body).Error.Message, "invalid credentials") {
				t.Errorf("message: got %s, want invalid credentials", body)
			}
		})
	}
}
