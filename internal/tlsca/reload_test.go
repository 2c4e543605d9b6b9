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
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writePair writes a fresh self-signed certificate with the given serial and
// moves the files' mtime to stamp, so the change is visible whatever the
// file system's time resolution.
func writePair(t *testing.T, certFile, keyFile string, serial int64, stamp time.Time) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	for path, data := range map[string][]byte{certFile: pemBlock("CERTIFICATE", der), keyFile: pemBlock("PRIVATE KEY", keyDER)} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, stamp, stamp); err != nil {
			t.Fatal(err)
		}
	}
}

func servedSerial(t *testing.T, r *Reloader) int64 {
	t.Helper()
	c, err := r.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf.SerialNumber.Int64()
}

func TestReloader(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	base := time.Now().Add(-time.Hour)
	writePair(t, certFile, keyFile, 1, base)

	r, err := NewReloader(certFile, keyFile, time.Hour)
	if err != nil {
		t.Fatalf("NewReloader: %v", err)
	}
	r.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if got := servedSerial(t, r); got != 1 {
		t.Fatalf("serial: got %d, want 1", got)
	}
	if changed, err := r.Reload(); changed || err != nil {
		t.Errorf("Reload without a change: got %v, %v, want false, nil", changed, err)
	}

	writePair(t, certFile, keyFile, 2, base.Add(time.Minute))
	if changed, err := r.Reload(); !changed || err != nil {
		t.Fatalf("Reload after a change: got %v, %v, want true, nil", changed, err)
	}
	if got := servedSerial(t, r); got != 2 {
		t.Errorf("serial: got %d, want 2", got)
	}

	// A broken key keeps the previous certificate in service.
	if err := os.WriteFile(keyFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reload(); err == nil {
		t.Error("Reload of a broken pair: got nil error, want one")
	}
	if got := servedSerial(t, r); got != 2 {
		t.Errorf("after a failed reload: serial %d, want 2 still", got)
	}
}

// Start's poll loop picks up a changed pair and stops with its context.
func TestReloaderStart(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	base := time.Now().Add(-time.Hour)
	writePair(t, certFile, keyFile, 1, base)
	r, err := NewReloader(certFile, keyFile, 5*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	r.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Start(ctx) }()

	writePair(t, certFile, keyFile, 7, base.Add(time.Minute))
	deadline := time.Now().Add(10 * time.Second)
	for servedSerial(t, r) != 7 {
		if time.Now().After(deadline) {
			t.Fatal("the poll loop never picked up the new certificate")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Start: got %v, want nil after cancel", err)
	}
}

func TestNewReloaderMissingFiles(t *testing.T) {
	if _, err := NewReloader("/nonexistent/tls.crt", "/nonexistent/tls.key", 0); err == nil {
		t.Error("got nil error for missing files, want one")
	}
}
