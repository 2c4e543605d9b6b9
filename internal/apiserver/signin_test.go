package apiserver_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/plumbline/plumbline/api"
)

func TestSigninLink(t *testing.T) {
	f := newFixture(t)
	var link api.SigninLink
	if err := json.Unmarshal(f.mustDo("POST", "/signin-links", []byte(`{"endpoint":"Cars"}`), http.StatusCreated), &link); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^https://localhost:8443/studio/#signin=([A-Za-z0-9_-]{43})&to=/endpoints/cars$`).FindStringSubmatch(link.URL)
	if m == nil {
		t.Fatalf("link %q: want the studio URL with a code in the fragment and the endpoint to open", link.URL)
	}
	if got := link.ExpiresAt.Sub(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)); got.Minutes() != 10 {
		t.Errorf("link expires in %s, want 10m", got)
	}
	redeem := func(code string) (int, string) {
		resp, err := http.Post(f.srv.URL+"/api/v1/signin", "application/json", bytes.NewReader([]byte(`{"code":"`+code+`"}`)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var got api.SigninResponse
	status, body := redeem(m[1])
	if err := json.Unmarshal([]byte(body), &got); status != http.StatusOK || err != nil || got.Token != admin {
		t.Errorf("first use without a token: %d %s, want 200 with the admin token", status, body)
	}
	if status, body := redeem(m[1]); status != http.StatusUnauthorized {
		t.Errorf("second use: %d %s, want 401 (a link works once)", status, body)
	}
	if status, _ := redeem("made-up"); status != http.StatusUnauthorized {
		t.Errorf("a made-up code: %d, want 401", status)
	}
	resp, err := http.Post(f.srv.URL+"/api/v1/signin-links", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a link without the admin token: %d, want 401", resp.StatusCode)
	}
}
