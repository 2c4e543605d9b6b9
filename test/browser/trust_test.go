package browser

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestTrustAndSignInLink: after `plumbline trust`, Chromium (checking
// certificates, with that user's HOME) opens the studio over HTTPS without a
// certificate error, while a Chromium without it refuses the certificate;
// the one-time sign-in link `up` prints signs the tab in and opens the
// endpoint, and works only once.
func TestTrustAndSignInLink(t *testing.T) {
	requireRunnable(t)
	if _, err := exec.LookPath("certutil"); err != nil {
		if requireCI() {
			t.Fatal("PLUMBLINE_CI=1 and certutil is missing: bash scripts/install-test-deps.sh installs libnss3-tools")
		}
		t.Skip("certutil is not installed (apt-get install libnss3-tools)")
	}
	dd := newDataDir(t)
	srv := startServer(t, dd)
	ex := t.TempDir()
	writeTestFile(t, filepath.Join(ex, "endpoint.yml"), "name: trusted-ep\nauth_mode: key\n")
	srv.cliIn(t, ex, "online-endpoint", "create", "-f", "endpoint.yml")
	studio := srv.state.URL + "/studio/"

	// Without trust, Chromium refuses the local CA's certificate.
	untrusted := newBrowserWith(t, t.TempDir(), false, "HOME="+t.TempDir())
	if _, err := chromedp.RunResponse(untrusted.ctx, chromedp.Navigate(studio)); err == nil || !strings.Contains(err.Error(), "ERR_CERT_AUTHORITY_INVALID") {
		t.Fatalf("an untrusting Chromium opened %s: %v; want ERR_CERT_AUTHORITY_INVALID (else this test proves nothing)", studio, err)
	}

	home := t.TempDir()
	cmd := exec.Command(binPath, "trust")
	cmd.Env = cleanEnv("HOME="+home, "PLUMBLINE_DATA_DIR="+dd)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("plumbline trust: %v\n%s", err, out)
	}
	for _, want := range []string{"Trusted \"plumbline local CA ", filepath.Join(home, ".pki", "nssdb"), "sudo cp " + filepath.Join(dd, "tls", "ca.crt") + " /usr/local/share/ca-certificates/plumbline-", "update-ca-certificates"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("plumbline trust printed no %q:\n%s", want, out)
		}
	}

	link := signinLink(t, srv, "trusted-ep")
	b := newBrowserWith(t, t.TempDir(), false, "HOME="+home)
	if _, err := chromedp.RunResponse(b.ctx, chromedp.Navigate(link)); err != nil {
		t.Fatalf("after plumbline trust, Chromium could not open the studio: %v", err)
	}
	b.waitJS("the link signed the tab in and opened the endpoint", `location.hash === "#/endpoints/trusted-ep" && document.querySelector("main h1")?.textContent.includes("trusted-ep")`)
	if eval[string](b, `sessionStorage.getItem('plumbline.studio.token')`) != srv.adminToken(t) {
		b.fatalf("the sign-in link did not leave the admin token in the tab's sessionStorage")
	}
	// The link works once.
	b.click("#sign-out")
	b.do("see the sign-in form", chromedp.WaitVisible(chromedp.CSS("#token")))
	b.do("open the used link", chromedp.Navigate(link), chromedp.Reload())
	b.waitText("main", "already used or has expired")
	if eval[bool](b, `sessionStorage.getItem('plumbline.studio.token') !== null`) {
		b.fatalf("a used sign-in link signed the tab in again")
	}
	if ps := b.consoleProblems(); len(ps) > 0 {
		// The refused link is a 401 the page reports on purpose.
		for _, p := range ps {
			if !strings.Contains(p, "401") {
				t.Errorf("the browser console reported: %s", p)
			}
		}
	}
}

// signinLink asks the API for a one-time sign-in link, as up does.
func signinLink(t *testing.T, srv *server, endpoint string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", srv.state.URL+"/api/v1/signin-links", bytes.NewReader([]byte(`{"endpoint":"`+endpoint+`"}`)))
	req.Header.Set("Authorization", "Bearer "+srv.adminToken(t))
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.httpClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var link struct{ URL string }
	if err := json.NewDecoder(resp.Body).Decode(&link); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("sign-in link: %d %v", resp.StatusCode, err)
	}
	return link.URL
}

// requireCI reports whether PLUMBLINE_CI=1 turns skips into failures.
func requireCI() bool { return os.Getenv("PLUMBLINE_CI") == "1" }

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// apiJSON GETs an API path with the admin token and decodes the answer.
func (s *server) apiJSON(t *testing.T, path string, v any) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.state.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+s.adminToken(t))
	resp, err := s.httpClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}
