package tlsca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// File names inside the CA directory.
const (
	CACertFile     = "ca.crt"
	CAKeyFile      = "ca.key"
	ServerCertFile = "server.crt"
	ServerKeyFile  = "server.key"
)

// Lifetimes. The server certificate stays under the 398 days browsers
// accept and is re-issued RenewBefore its expiry.
const (
	CALifetime     = 10 * 365 * 24 * time.Hour
	ServerLifetime = 397 * 24 * time.Hour
	RenewBefore    = 30 * 24 * time.Hour
	// backdate tolerates clients whose clock is a little behind.
	backdate = time.Hour
)

// defaultNames are always in the server certificate.
var defaultNames = []string{"localhost", "*.localhost", "127.0.0.1", "::1"}

// CA is plumbline's local certificate authority and the server certificate
// it signed. Safe for concurrent use.
type CA struct {
	dir   string
	names []string // the server certificate's SANs, sorted
	cert  *x509.Certificate
	key   crypto.Signer
	pool  *x509.CertPool

	// server is the current server certificate, re-issued when it nears
	// expiry; mu serialises re-issuing.
	server atomic.Pointer[tls.Certificate]
	mu     sync.Mutex

	// hosts caches certificates issued on demand for one host name under a
	// configured name (<endpoint>.localhost): OpenSSL, and so curl and R,
	// refuse a wildcard directly under a one-label name like *.localhost.
	hostMu sync.Mutex // protects hosts
	hosts  map[string]*tls.Certificate
}

// maxHostCerts bounds the on-demand certificate cache.
const maxHostCerts = 1024

// Ensure returns the CA kept in dir, creating it on first use: dir (0700),
// an ECDSA P-256 CA valid ten years, "plumbline local CA <hostname>"
// (ca.crt 0644, ca.key 0600), and a server certificate signed by it
// (server.crt, server.key, both 0600) for localhost, *.localhost, 127.0.0.1,
// ::1 and names. Each DNS name in names also gets its wildcard, so
// host-based scoring URIs (<endpoint>.<name>) verify. Existing files are
// reused; the server certificate is re-issued when the names change, when
// it is within 30 days of expiry, or when it does not match the CA. An
// expired CA is replaced (clients must trust the new ca.crt).
func Ensure(dir string, names []string) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tls dir: %w", err)
	}
	c := &CA{dir: dir, names: sanNames(names)}
	now := time.Now()
	fresh, err := c.loadOrCreateCA(now)
	if err != nil {
		return nil, err
	}
	c.pool = x509.NewCertPool()
	c.pool.AddCert(c.cert)

	if !fresh {
		if cert, err := c.loadServer(now); err == nil {
			c.server.Store(cert)
			return c, nil
		}
	}
	if err := c.issueServer(now); err != nil {
		return nil, err
	}
	return c, nil
}

// CertPath is the CA certificate's file, for clients to trust
// (curl --cacert, R's httr2 with CURL_CA_BUNDLE, a system trust store).
func (c *CA) CertPath() string { return filepath.Join(c.dir, CACertFile) }

// ServerCertPath and ServerKeyPath are the server certificate's files.
func (c *CA) ServerCertPath() string { return filepath.Join(c.dir, ServerCertFile) }

// ServerKeyPath is the server private key's file.
func (c *CA) ServerKeyPath() string { return filepath.Join(c.dir, ServerKeyFile) }

// Certificate returns the CA certificate.
func (c *CA) Certificate() *x509.Certificate { return c.cert }

// Pool returns a pool holding the CA certificate, for Go clients.
func (c *CA) Pool() *x509.CertPool { return c.pool.Clone() }

// Names returns the server certificate's subject alternative names.
func (c *CA) Names() []string { return slices.Clone(c.names) }

// GetCertificate serves the server certificate (tls.Config.GetCertificate).
// A certificate within 30 days of expiry is re-issued on the spot, so a
// long-running server never serves an expired one.
func (c *CA) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if hello != nil && c.onDemand(hello.ServerName) {
		if cert, err := c.hostCertificate(strings.ToLower(hello.ServerName)); err == nil {
			return cert, nil
		}
	}
	cert := c.server.Load()
	now := time.Now()
	if now.Before(cert.Leaf.NotAfter.Add(-RenewBefore)) {
		return cert, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cert = c.server.Load(); now.Before(cert.Leaf.NotAfter.Add(-RenewBefore)) {
		return cert, nil
	}
	if err := c.issueServer(now); err != nil {
		return cert, nil // keep serving the old one while it is valid
	}
	return c.server.Load(), nil
}

// loadOrCreateCA loads ca.crt and ca.key, or creates them. fresh reports a
// new CA, whose server certificate must be issued anew.
func (c *CA) loadOrCreateCA(now time.Time) (fresh bool, err error) {
	certPEM, errCert := os.ReadFile(filepath.Join(c.dir, CACertFile))
	keyPEM, errKey := os.ReadFile(filepath.Join(c.dir, CAKeyFile))
	switch {
	case errors.Is(errCert, fs.ErrNotExist) && errors.Is(errKey, fs.ErrNotExist):
		return true, c.createCA(now)
	case errCert != nil:
		return false, fmt.Errorf("local CA: %w", errCert)
	case errKey != nil:
		return false, fmt.Errorf("local CA: %w (remove %s to create a new CA)", errKey, c.CertPath())
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return false, fmt.Errorf("local CA in %s: %w (remove %s and %s to create a new CA)", c.dir, err, CACertFile, CAKeyFile)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok || !pair.Leaf.IsCA {
		return false, fmt.Errorf("local CA in %s: %s is not a CA certificate with a signing key", c.dir, CACertFile)
	}
	if !now.Before(pair.Leaf.NotAfter) {
		return true, c.createCA(now) // expired: nothing can trust it any more
	}
	c.cert, c.key = pair.Leaf, signer
	return false, nil
}

func (c *CA) createCA(now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("local CA key: %w", err)
	}
	host, _ := os.Hostname()
	name := strings.TrimSpace("plumbline local CA " + host)
	serial, err := newSerial()
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"plumbline"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(CALifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("local CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("local CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("local CA key: %w", err)
	}
	// Key first: a crash in between leaves no certificate without its key.
	if err := writeFileAtomic(filepath.Join(c.dir, CAKeyFile), pemBlock("PRIVATE KEY", keyDER), 0o600); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(c.dir, CACertFile), pemBlock("CERTIFICATE", der), 0o644); err != nil {
		return err
	}
	c.cert, c.key = cert, key
	return nil
}

// loadServer loads the server certificate if it is still right: signed by
// this CA, for exactly c.names, and not within RenewBefore of expiry.
func (c *CA) loadServer(now time.Time) (*tls.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(c.ServerCertPath(), c.ServerKeyPath())
	if err != nil {
		return nil, err
	}
	leaf := pair.Leaf
	switch {
	case leaf.CheckSignatureFrom(c.cert) != nil:
		return nil, errors.New("server certificate is not signed by the CA")
	case !slices.Equal(leafNames(leaf), c.names):
		return nil, errors.New("server certificate names changed")
	case now.Before(leaf.NotBefore) || !now.Before(leaf.NotAfter.Add(-RenewBefore)):
		return nil, errors.New("server certificate expires soon")
	}
	return &pair, nil
}

// issueServer signs a new server certificate, writes it and serves it.
func (c *CA) issueServer(now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("server key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "plumbline", Organization: []string{"plumbline"}},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(ServerLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range c.names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, key.Public(), c.key)
	if err != nil {
		return fmt.Errorf("server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("server key: %w", err)
	}
	certPEM, keyPEM := pemBlock("CERTIFICATE", der), pemBlock("PRIVATE KEY", keyDER)
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("server certificate: %w", err)
	}
	if err := writeFileAtomic(c.ServerKeyPath(), keyPEM, 0o600); err != nil {
		return err
	}
	if err := writeFileAtomic(c.ServerCertPath(), certPEM, 0o600); err != nil {
		return err
	}
	c.server.Store(&pair)
	return nil
}

// sanNames normalises the configured names and adds the defaults and the
// wildcard of each DNS name; sorted, without duplicates.
func sanNames(names []string) []string {
	out := slices.Clone(defaultNames)
	for _, n := range names {
		n = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(n), "."))
		if n == "" {
			continue
		}
		if ip := net.ParseIP(strings.Trim(n, "[]")); ip != nil {
			out = append(out, ip.String())
			continue
		}
		out = append(out, n)
		if !strings.HasPrefix(n, "*.") {
			out = append(out, "*."+n)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// leafNames are a certificate's SANs in sanNames' form.
func leafNames(c *x509.Certificate) []string {
	out := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("certificate serial: %w", err)
	}
	return s, nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// writeFileAtomic writes data to path with perm through a temporary file
// and a rename, so a reader never sees half a file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := bytes.NewReader(data).WriteTo(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	ok = true
	return nil
}

// onDemand reports whether name is one DNS label under a configured name
// (x.localhost, x.models.example.com): those get a certificate of their own.
func (c *CA) onDemand(name string) bool {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	label, parent, ok := strings.Cut(name, ".")
	if !ok || label == "" || len(label) > 63 || strings.ContainsAny(label, "*_ ") || net.ParseIP(name) != nil {
		return false
	}
	for _, n := range c.names {
		if n == parent {
			return true
		}
	}
	return false
}

// hostCertificate returns (issuing and caching it) a certificate for name
// alone, signed by the CA, valid as long as the server certificate.
func (c *CA) hostCertificate(name string) (*tls.Certificate, error) {
	now := time.Now()
	c.hostMu.Lock()
	defer c.hostMu.Unlock()
	if cert, ok := c.hosts[name]; ok && now.Before(cert.Leaf.NotAfter.Add(-RenewBefore)) {
		return cert, nil
	}
	if c.hosts == nil || len(c.hosts) >= maxHostCerts {
		c.hosts = map[string]*tls.Certificate{}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"plumbline"}},
		DNSNames:     []string{name},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(ServerLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, key.Public(), c.key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	cert := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	c.hosts[name] = cert
	return cert, nil
}
