package e2e

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestScoringCodeCannotReadSecrets is defect 9: scoring code ran as the
// server's user and could read the local CA's private key, the admin token
// and the database. A server running as root now runs its instances as the
// unprivileged plumbline-instance user: a plumber.R that tries to read them
// gets "Permission denied", while it reads its own code and serves.
func TestScoringCodeCannotReadSecrets(t *testing.T) {
	requireR(t, "plumber", "jsonlite")
	if os.Geteuid() != 0 {
		skip(t, "instances run as another user only when the server runs as root")
	}
	dd := newDataDir(t)
	s := startServer(t, dd)
	fixtures := filepath.Join("testdata", "r")
	s.must(t, "online-endpoint", "create", "--name", "r-snoop", "--auth-mode", "key")
	r := s.cliIn(t, fixtures, "online-deployment", "create", "-f", "deployment.yml", "--all-traffic",
		"--set", "name=snoop", "--set", "endpoint_name=r-snoop", "--set", "code_configuration.code=./snoop",
		"--set", "environment_variables.SNOOP_DATA_DIR="+dd)
	if r.code != 0 {
		t.Fatalf("create: %s", r)
	}
	rep := score(t, s.httpClient(t), s.endpoint(t, "r-snoop").ScoringURI, s.keys(t, "r-snoop").PrimaryKey, "", "{}")
	if rep.status != http.StatusOK {
		t.Fatalf("score: got %d %s", rep.status, rep.body)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(rep.body), &got); err != nil {
		t.Fatalf("answer %s: %v", rep.body, err)
	}
	t.Logf("what the scoring code saw: %s", rep.body)
	if uid, _ := got["uid"].(float64); uid == 0 || got["user"] != "plumbline-instance" {
		t.Errorf("the instance runs as uid %v user %v, want the unprivileged plumbline-instance", got["uid"], got["user"])
	}
	for _, secret := range []string{"admin_token", "ca_key", "database", "secrets_key"} {
		if msg, _ := got[secret].(string); !strings.Contains(msg, "Permission denied") {
			t.Errorf("%s: the scoring code got %q, want Permission denied", secret, msg)
		}
	}
	if got["own_code"] != "read" {
		t.Errorf("own code: got %v, want read", got["own_code"])
	}
	// The files are still the server's: it reads them.
	for _, p := range []string{"admin.token", "tls/ca.key", "secrets.key"} {
		if _, err := os.ReadFile(filepath.Join(dd, p)); err != nil {
			t.Errorf("the server's own %s: %v", p, err)
		}
	}

	// Instances listen on the loopback only: nothing off this machine
	// reaches them around the gateway (what a local process can do is in
	// docs/security.md).
	rec := record(t, dd, "r-snoop", "snoop", "snoop-0")
	if ip := nonLoopbackIP(t); ip != "" {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, strconv.Itoa(rec.Port)), 2*time.Second)
		if err == nil {
			c.Close()
			t.Errorf("the instance's port %d answers on %s, want loopback only", rec.Port, ip)
		}
	}
}

// nonLoopbackIP is an address of this machine that is not the loopback, or
// "" when it has none.
func nonLoopbackIP(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}
