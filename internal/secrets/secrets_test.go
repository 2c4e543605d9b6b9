package secrets

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/plumbline/plumbline/internal/store"
	"github.com/plumbline/plumbline/internal/store/sqlite"
	"github.com/plumbline/plumbline/internal/store/storetest"
)

var bg = context.Background()

func newKey(t *testing.T) *Key {
	t.Helper()
	k, err := CreateKey(filepath.Join(t.TempDir(), "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func openSQLite(t *testing.T) (*sqlite.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "plumbline.db")
	db, err := sqlite.Open(bg, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

// TestConformance: the sealed store keeps every rule of store.Store (in
// particular, an update that leaves the keys alone does not change them in
// the store, so it does not count as a change of the desired state).
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		db, _ := openSQLite(t)
		return Wrap(db, newKey(t))
	})
}

// TestKeysAtRest: what the database file holds is sealed; the keys come
// back in the clear through the wrapper only.
func TestKeysAtRest(t *testing.T) {
	db, path := openSQLite(t)
	st := Wrap(db, newKey(t))
	const primary, secondary = "PRIMARY-key-0123456789abcdefghijklmnopqrstu", "SECONDARY-key-0123456789abcdefghijklmnopqr"
	e, err := st.CreateEndpoint(bg, store.Endpoint{Name: "ep", AuthMode: "key", PrimaryKey: primary, SecondaryKey: secondary})
	if err != nil {
		t.Fatal(err)
	}
	if e.PrimaryKey != primary || e.SecondaryKey != secondary {
		t.Errorf("create returned %q %q, want the plain keys", e.PrimaryKey, e.SecondaryKey)
	}
	signing := bytes.Repeat([]byte("S"), 32)
	if err := st.PutSetting(bg, "aml_token_signing_key", signing); err != nil {
		t.Fatal(err)
	}
	raw, err := db.GetEndpoint(bg, "ep")
	if err != nil {
		t.Fatal(err)
	}
	if !IsSealed(raw.PrimaryKey) || !IsSealed(raw.SecondaryKey) || strings.Contains(raw.PrimaryKey, "PRIMARY") {
		t.Errorf("stored keys: %q %q, want sealed", raw.PrimaryKey, raw.SecondaryKey)
	}
	rawSetting, _ := db.GetSetting(bg, "aml_token_signing_key")
	if !IsSealed(string(rawSetting)) {
		t.Errorf("stored signing key: %q, want sealed", rawSetting)
	}
	got, err := st.GetEndpoint(bg, "ep")
	if err != nil || got.PrimaryKey != primary || got.SecondaryKey != secondary {
		t.Errorf("get: %q %q %v", got.PrimaryKey, got.SecondaryKey, err)
	}
	if b, err := st.GetSetting(bg, "aml_token_signing_key"); err != nil || !bytes.Equal(b, signing) {
		t.Errorf("signing key: got %q %v", b, err)
	}
	// A status update leaves the sealed keys as they were.
	if _, err := st.UpdateEndpoint(bg, "ep", func(e *store.Endpoint) error { e.State = "Succeeded"; return nil }); err != nil {
		t.Fatal(err)
	}
	after, _ := db.GetEndpoint(bg, "ep")
	if after.PrimaryKey != raw.PrimaryKey || after.Generation != raw.Generation {
		t.Errorf("a status update resealed the key or moved the generation: %d → %d", raw.Generation, after.Generation)
	}
	// A regenerated key is sealed afresh.
	if _, err := st.UpdateEndpoint(bg, "ep", func(e *store.Endpoint) error { e.SecondaryKey = "new-secondary"; return nil }); err != nil {
		t.Fatal(err)
	}
	after, _ = db.GetEndpoint(bg, "ep")
	if after.PrimaryKey != raw.PrimaryKey || after.SecondaryKey == raw.SecondaryKey || !IsSealed(after.SecondaryKey) {
		t.Errorf("after regenerating the secondary key: %q %q", after.PrimaryKey, after.SecondaryKey)
	}
	st.Store.(*sqlite.DB).Close()
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range [][]byte{[]byte(primary), []byte("new-secondary"), signing} {
		if bytes.Contains(file, secret) {
			t.Errorf("the database file holds %q in the clear", secret)
		}
	}
}

func TestWrongKeyAndMovedValues(t *testing.T) {
	db, _ := openSQLite(t)
	st := Wrap(db, newKey(t))
	for _, name := range []string{"a-ep", "b-ep"} {
		if _, err := st.CreateEndpoint(bg, store.Endpoint{Name: name, PrimaryKey: "pk-" + name, SecondaryKey: "sk-" + name}); err != nil {
			t.Fatal(err)
		}
	}
	other := Wrap(db, newKey(t))
	_, err := other.GetEndpoint(bg, "a-ep")
	if !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "this server has key") {
		t.Errorf("another key: got %v, want ErrWrongKey naming both keys", err)
	}
	if _, err := other.ListEndpoints(bg); !errors.Is(err, ErrWrongKey) {
		t.Errorf("list with another key: got %v", err)
	}
	// Copy a's sealed primary key into b's row: it does not open there.
	a, _ := db.GetEndpoint(bg, "a-ep")
	if _, err := db.UpdateEndpoint(bg, "b-ep", func(e *store.Endpoint) error { e.PrimaryKey = a.PrimaryKey; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetEndpoint(bg, "b-ep"); !errors.Is(err, ErrWrongKey) {
		t.Errorf("a sealed key moved to another endpoint: got %v, want ErrWrongKey", err)
	}
}

// TestSealExisting: a store written before keys were encrypted is sealed
// at start, and keeps working.
func TestSealExisting(t *testing.T) {
	db, _ := openSQLite(t)
	if _, err := db.CreateEndpoint(bg, store.Endpoint{Name: "old", AuthMode: "key", PrimaryKey: "plain-p", SecondaryKey: "plain-s"}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutSetting(bg, "aml_token_signing_key", bytes.Repeat([]byte("k"), 32)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "secrets.key")
	k, err := LoadOrCreate(bg, keyPath, db)
	if err != nil {
		t.Fatal(err)
	}
	st := Wrap(db, k)
	n, err := st.SealExisting(bg)
	if err != nil || n != 2 {
		t.Fatalf("SealExisting: got %d, %v; want 2 (the endpoint's keys, the signing key)", n, err)
	}
	raw, _ := db.GetEndpoint(bg, "old")
	if !IsSealed(raw.PrimaryKey) || !IsSealed(raw.SecondaryKey) {
		t.Errorf("after SealExisting: %q %q", raw.PrimaryKey, raw.SecondaryKey)
	}
	got, err := st.GetEndpoint(bg, "old")
	if err != nil || got.PrimaryKey != "plain-p" {
		t.Errorf("get: %q %v", got.PrimaryKey, err)
	}
	if n, err := st.SealExisting(bg); err != nil || n != 0 {
		t.Errorf("second SealExisting: got %d, %v; want 0", n, err)
	}
	if fi, _ := os.Stat(keyPath); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	// The key file lost: a new one would not open what is sealed.
	os.Remove(keyPath)
	if _, err := LoadOrCreate(bg, keyPath, db); err == nil || !strings.Contains(err.Error(), "restore the file") {
		t.Errorf("LoadOrCreate without the key file: got %v, want a refusal", err)
	}
	if _, err := os.Stat(keyPath); err == nil {
		t.Error("a new key file was created")
	}
	// A key file others can read is refused.
	os.WriteFile(keyPath, []byte("x"), 0o644)
	os.Chmod(keyPath, 0o644)
	if _, err := LoadKey(keyPath); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a 0644 key file: got %v", err)
	}
}

// TestLoadOrCreateConcurrently: replicas sharing a data dir start at once;
// one makes the key, the others read that one.
func TestLoadOrCreateConcurrently(t *testing.T) {
	db, _ := openSQLite(t)
	path := filepath.Join(t.TempDir(), "secrets.key")
	const n = 8
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			k, err := LoadOrCreate(bg, path, db)
			errs[i] = err
			if err == nil {
				ids[i] = k.ID()
			}
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || ids[i] != ids[0] {
			t.Errorf("replica %d: key %s (%v), want %s", i, ids[i], errs[i], ids[0])
		}
	}
}

// TestFullKeepsOptionalInterfaces: the API finds model update through the
// sealed store.
func TestFullKeepsOptionalInterfaces(t *testing.T) {
	db, _ := openSQLite(t)
	if _, ok := Wrap(db, newKey(t)).Full().(store.ModelUpdater); !ok {
		t.Error("the sealed store hides store.ModelUpdater")
	}
}
