package tlsca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func serverLeaf(t *testing.T, ca *CA) *x509.Certificate {
	t.Helper()
	c, err := ca.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf
}

func TestEnsureCreates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	ca, err := Ensure(dir, []string{"myhost", "10.0.0.7"})
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	modes := map[string]os.FileMode{
		dir:                                0o700,
		filepath.Join(dir, CACertFile):     0o644,
		filepath.Join(dir, CAKeyFile):      0o600,
		filepath.Join(dir, ServerCertFile): 0o600,
		filepath.Join(dir, ServerKeyFile):  0o600,
	}
	for p, want := range modes {
		if got := fileMode(t, p); got != want {
			t.Errorf("%s: got mode %04o, want %04o", filepath.Base(p), got, want)
		}
	}
	if ca.CertPath() != filepath.Join(dir, CACertFile) {
		t.Errorf("CertPath: got %q", ca.CertPath())
	}
	root := ca.Certificate()
	if !root.IsCA || !strings.HasPrefix(root.Subject.CommonName, "plumbline local CA") {
		t.Errorf("CA: got IsCA %v, CN %q", root.IsCA, root.Subject.CommonName)
	}
	if _, ok := root.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("CA key: got %T, want ECDSA", root.PublicKey)
	}
	if life := root.NotAfter.Sub(root.NotBefore); life < 9*365*24*time.Hour {
		t.Errorf("CA lifetime: got %v, want ten years", life)
	}
	leaf := serverLeaf(t, ca)
	want := []string{"*.localhost", "*.myhost", "10.0.0.7", "127.0.0.1", "::1", "localhost", "myhost"}
	if diff := cmp.Diff(want, leafNames(leaf)); diff != "" {
		t.Errorf("server names (-want +got):\n%s", diff)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "x.localhost"}); err != nil {
		t.Errorf("server certificate does not verify against the CA: %v", err)
	}
}

func TestEnsureReuses(t *testing.T) {
	dir := t.TempDir()
	first, err := Ensure(dir, []string{"myhost"})
	if err != nil {
		t.Fatal(err)
	}
	stat := func(name string) time.Time {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return fi.ModTime()
	}
	before := stat(ServerCertFile)

	second, err := Ensure(dir, []string{"MyHost."}) // same name, other spelling
	if err != nil {
		t.Fatal(err)
	}
	if !first.Certificate().Equal(second.Certificate()) {
		t.Error("CA re-created, want it reused")
	}
	if serverLeaf(t, first).SerialNumber.Cmp(serverLeaf(t, second).SerialNumber) != 0 || !stat(ServerCertFile).Equal(before) {
		t.Error("server certificate re-issued, want it reused")
	}

	third, err := Ensure(dir, []string{"myhost", "other.example"})
	if err != nil {
		t.Fatal(err)
	}
	if !first.Certificate().Equal(third.Certificate()) {
		t.Error("CA re-created on a name change, want it reused")
	}
	if leaf := serverLeaf(t, third); !slices.Contains(leaf.DNSNames, "other.example") {
		t.Errorf("after a name change: got names %v, want other.example among them", leaf.DNSNames)
	}
}

// A server certificate within 30 days of expiry is re-issued by Ensure.
func TestEnsureRenewsNearExpiry(t *testing.T) {
	dir := t.TempDir()
	ca, err := Ensure(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Replace the server certificate with one that expires in ten days.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := newSerial()
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "plumbline"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 24 * time.Hour),
		DNSNames: []string{"*.localhost", "localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	if err := writeFileAtomic(ca.ServerCertPath(), pemBlock("CERTIFICATE", der), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(ca.ServerKeyPath(), pemBlock("PRIVATE KEY", keyDER), 0o600); err != nil {
		t.Fatal(err)
	}
	again, err := Ensure(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf := serverLeaf(t, again)
	if leaf.SerialNumber.Cmp(serial) == 0 || leaf.NotAfter.Before(now.Add(300*24*time.Hour)) {
		t.Errorf("got serial %v expiring %v, want a fresh certificate", leaf.SerialNumber, leaf.NotAfter)
	}
}

// A Go client trusting CA.Pool() verifies https://localhost and
// https://x.localhost; ALPN offers h2; TLS 1.1 is refused.
func TestServeWithCA(t *testing.T) {
	ca, err := Ensure(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.Host) }),
		TLSConfig: ServerTLSConfig(ca.GetCertificate),
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	dialer := &net.Dialer{}
	transport := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ca.Pool()},
		ForceAttemptHTTP2: true,
		// Any host name reaches the test server; the certificate decides.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, ln.Addr().String())
		},
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}

	tests := []struct {
		host    string
		wantErr bool
	}{
		{"localhost", false},
		{"x.localhost", false},
		{"127.0.0.1", false},
		{"example.com", true},
		{"a.b.localhost", true},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			res, err := client.Get("https://" + net.JoinHostPort(tt.host, strconv.Itoa(port)) + "/")
			if tt.wantErr {
				if err == nil {
					_ = res.Body.Close()
					t.Fatalf("GET https://%s: got no error, want a verification failure", tt.host)
				}
				return
			}
			if err != nil {
				t.Fatalf("GET https://%s: %v", tt.host, err)
			}
			defer res.Body.Close()
			if res.ProtoMajor != 2 {
				t.Errorf("protocol: got %s, want HTTP/2 by ALPN", res.Proto)
			}
		})
	}

	old := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", MaxVersion: tls.VersionTLS11}
	if c, err := tls.Dial("tcp", ln.Addr().String(), old); err == nil {
		_ = c.Close()
		t.Error("TLS 1.1 handshake succeeded, want it refused")
	}
}

func TestHostCertificateOnDemand(t *testing.T) {
	ca, err := Ensure(t.TempDir(), []string{"models.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		sni      string
		wantName string // "" means the shared server certificate
	}{
		{"iris.localhost", "iris.localhost"},
		{"IRIS.localhost", "iris.localhost"},
		{"iris.models.example.com", "iris.models.example.com"},
		{"localhost", ""},
		{"a.b.localhost", ""},
		{"127.0.0.1", ""},
		{"evil.example.org", ""},
	}
	for _, tt := range tests {
		t.Run(tt.sni, func(t *testing.T) {
			cert, err := ca.GetCertificate(&tls.ClientHelloInfo{ServerName: tt.sni})
			if err != nil {
				t.Fatal(err)
			}
			leaf, err := x509.ParseCertificate(cert.Certificate[0])
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantName == "" {
				if len(leaf.DNSNames) < 2 {
					t.Errorf("got names %v, want the shared server certificate", leaf.DNSNames)
				}
				return
			}
			if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != tt.wantName {
				t.Errorf("got names %v, want [%s]", leaf.DNSNames, tt.wantName)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: tt.wantName}); err != nil {
				t.Errorf("does not verify against the CA: %v", err)
			}
		})
	}
}
