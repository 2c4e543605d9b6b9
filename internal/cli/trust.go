package cli

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

func newTrustCmd(g *globals) *cobra.Command {
	var remove bool
	c := &cobra.Command{
		Use:   "trust",
		Short: "Make this user's browsers trust the local CA (and print the system-wide command)",
		Long: `Add the data dir's local CA (<data dir>/tls/ca.crt, which signs the server's certificate) to
your NSS databases: ~/.pki/nssdb, which Chromium and Chrome use on Linux, and the profile
of each Firefox found under ~/.mozilla/firefox. It uses certutil (Debian: apt-get install
libnss3-tools). It then prints the commands that add the CA to the system store, which curl,
R and most programs use; they need root, so plumbline prints them instead of running them.

The CA's private key stays in <data dir>/tls/ca.key (mode 0600): whoever can read it can make
certificates your browser then trusts for any name. --remove takes the CA out again.`,
		Example: "  plumbline trust\n  plumbline trust --remove",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			ca := filepath.Join(g.dataDirPath(), "tls", "ca.crt")
			pemBytes, err := os.ReadFile(ca)
			if err != nil {
				if errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("no local CA at %s yet: it is created when the server first starts (plumbline serve, or plumbline up)", ca)
				}
				return err
			}
			cert, err := parseCert(pemBytes)
			if err != nil {
				return fmt.Errorf("%s: %w", ca, err)
			}
			sum := sha256.Sum256(cert.Raw)
			short := hex.EncodeToString(sum[:4])
			nick := "plumbline local CA " + short
			dbs := nssDatabases()
			certutil, lookErr := exec.LookPath("certutil")
			switch {
			case lookErr != nil:
				fmt.Fprintf(g.stderr, "certutil is not installed, so browsers were not changed: install it (Debian/Ubuntu: apt-get install libnss3-tools; Fedora: dnf install nss-tools) and run plumbline trust again\n")
			default:
				for _, db := range dbs {
					var err error
					if remove {
						err = nssRemove(certutil, db, nick)
					} else {
						err = nssAdd(certutil, db, nick, ca)
					}
					if err != nil {
						return err
					}
					verb := "Trusted"
					if remove {
						verb = "Removed"
					}
					fmt.Fprintf(g.stderr, "%s %q in %s\n", verb, nick, db.dir)
				}
			}
			if remove {
				fmt.Fprintf(g.stderr, "\nIf you added it to the system store, remove it there too:\n  Debian/Ubuntu:  sudo rm /usr/local/share/ca-certificates/plumbline-%s.crt && sudo update-ca-certificates --fresh\n  Fedora/RHEL:    sudo rm /etc/pki/ca-trust/source/anchors/plumbline-%s.crt && sudo update-ca-trust\n", short, short)
				return nil
			}
			fmt.Fprintf(g.stderr, `
Browsers read this when they start: restart Chromium or Firefox.

For the whole system (curl, R, Python without --cacert), as root:
  Debian/Ubuntu:  sudo cp %[1]s /usr/local/share/ca-certificates/plumbline-%[2]s.crt && sudo update-ca-certificates
  Fedora/RHEL:    sudo cp %[1]s /etc/pki/ca-trust/source/anchors/plumbline-%[2]s.crt && sudo update-ca-trust
  macOS:          sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain %[1]s
Undo with: plumbline trust --remove
`, ca, short)
			return nil
		},
	}
	c.Flags().BoolVar(&remove, "remove", false, "take the local CA out of the NSS databases again")
	return c
}

func parseCert(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate")
	}
	return x509.ParseCertificate(blk.Bytes)
}

// nssDB is one NSS certificate database.
type nssDB struct {
	dir    string
	create bool // the shared ~/.pki/nssdb: created when missing
}

// nssDatabases are this user's shared NSS database (~/.pki/nssdb, made if
// missing) and each Firefox profile's.
func nssDatabases() []nssDB {
	home, err := os.UserHomeDir()
	if err != nil {
		return nil
	}
	dbs := []nssDB{{dir: filepath.Join(home, ".pki", "nssdb"), create: true}}
	profiles, _ := filepath.Glob(filepath.Join(home, ".mozilla", "firefox", "*", "cert9.db"))
	for _, p := range profiles {
		dbs = append(dbs, nssDB{dir: filepath.Dir(p)})
	}
	return dbs
}

func nssAdd(certutil string, db nssDB, nick, ca string) error {
	if _, err := os.Stat(filepath.Join(db.dir, "cert9.db")); err != nil {
		if !db.create {
			return nil
		}
		if err := os.MkdirAll(db.dir, 0o700); err != nil {
			return err
		}
		if out, err := exec.Command(certutil, "-N", "-d", "sql:"+db.dir, "--empty-password").CombinedOutput(); err != nil {
			return fmt.Errorf("create the NSS database %s: %v: %s", db.dir, err, strings.TrimSpace(string(out)))
		}
	}
	// C,, : a CA trusted to issue server certificates (not e-mail, not code).
	if out, err := exec.Command(certutil, "-A", "-d", "sql:"+db.dir, "-t", "C,,", "-n", nick, "-i", ca).CombinedOutput(); err != nil {
		return fmt.Errorf("add the CA to %s: %v: %s", db.dir, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func nssRemove(certutil string, db nssDB, nick string) error {
	if _, err := os.Stat(filepath.Join(db.dir, "cert9.db")); err != nil {
		return nil
	}
	out, err := exec.Command(certutil, "-D", "-d", "sql:"+db.dir, "-n", nick).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "could not find certificate") {
		return fmt.Errorf("remove the CA from %s: %v: %s", db.dir, err, strings.TrimSpace(string(out)))
	}
	return nil
}
