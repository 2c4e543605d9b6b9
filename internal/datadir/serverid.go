package datadir

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ServerIDPath is the file holding the data dir's server id.
func (d *Dir) ServerIDPath() string { return filepath.Join(d.Root, "server-id") }

// ServerID returns the data dir's server id, creating it (16 random hex
// digits, 0600) on first use. Container drivers label what they start with
// it, so a server only ever touches its own containers.
func (d *Dir) ServerID() (string, error) {
	b, err := os.ReadFile(d.ServerIDPath())
	if err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	} else if !IsNotExist(err) {
		return "", fmt.Errorf("server id: %w", err)
	}
	raw := make([]byte, 8)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	id := hex.EncodeToString(raw)
	if err := WriteFilePrivate(d.ServerIDPath(), []byte(id+"\n")); err != nil {
		return "", fmt.Errorf("server id: %w", err)
	}
	return id, nil
}
