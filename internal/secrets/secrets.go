// Package secrets keeps endpoint keys and the aml_token signing key
// encrypted at rest. The store (SQLite file, PostgreSQL, their backups)
// holds them sealed with AES-256-GCM under the server's secrets key, a file
// kept apart from the database (by default <data dir>/secrets.key, 0600);
// Wrap returns a store.Store that seals them on the way in and opens them
// on the way out, so the API (get-credentials shows the keys, as Azure's
// does), the gateway and everything else see plain keys in memory only.
//
// Sealed values are "plk1:<key id>:<base64url(nonce|ciphertext)>"; the key
// id (8 hex digits of the key's SHA-256) lets a server with the wrong key
// say so instead of failing obscurely. Each value is bound, as additional
// data, to what it is (an endpoint's primary or secondary key, with the
// endpoint's ID; the signing key), so a sealed value copied to another
// place in the database does not open.
//
// Every server sharing a store (replicas on PostgreSQL) must be given the
// same secrets key. This package imports store only.
package secrets

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/plumbline/plumbline/internal/store"
)

// ErrWrongKey: a sealed value was sealed with another secrets key, or does
// not open (tampered with, or moved).
var ErrWrongKey = errors.New("sealed with another secrets key")

// sealedPrefix starts every sealed value.
const sealedPrefix = "plk1:"

// keyBytes is the size of a secrets key: AES-256.
const keyBytes = 32

// Key is a secrets key.
type Key struct {
	aead cipher.AEAD
	id   string
}

// ID identifies the key (8 hex digits of its SHA-256), for messages.
func (k *Key) ID() string { return k.id }

// NewKey returns a Key from 32 bytes.
func NewKey(raw []byte) (*Key, error) {
	if len(raw) != keyBytes {
		return nil, fmt.Errorf("secrets key: %d bytes, want %d", len(raw), keyBytes)
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	return &Key{aead: aead, id: hex.EncodeToString(sum[:4])}, nil
}

// LoadKey reads the secrets key at path: 32 bytes, base64 (standard or URL
// alphabet) on one line. It refuses a file that group or others may read,
// saying how to fix it.
func LoadKey(path string) (*Key, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("secrets key: %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("secrets key: %s has mode %04o, readable by group or others; run: chmod 600 %s", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	s := strings.TrimSpace(string(b))
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		raw, err = base64.StdEncoding.DecodeString(s)
	}
	if err != nil || len(raw) != keyBytes {
		return nil, fmt.Errorf("secrets key: %s does not hold 32 bytes in base64 (make one with: head -c 32 /dev/urandom | base64 > %s)", path, path)
	}
	return NewKey(raw)
}

// CreateKey writes a new random key at path (0600, in a folder created
// 0700 if missing) and returns it; it fails with an error wrapping
// fs.ErrExist if the file exists. The file appears whole or not at all (a
// complete temporary file is linked into place), so a replica reading it
// at the same moment never sees half of it.
func CreateKey(path string) (*Key, error) {
	raw := make([]byte, keyBytes)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	defer os.Remove(f.Name())
	_, werr := f.WriteString(base64.RawURLEncoding.EncodeToString(raw) + "\n")
	if err := errors.Join(werr, f.Chmod(0o600), f.Sync(), f.Close()); err != nil {
		return nil, fmt.Errorf("secrets key: write %s: %w", path, err)
	}
	if err := os.Link(f.Name(), path); err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	return NewKey(raw)
}

// Seal encrypts plain for the place aad names. An empty value stays empty
// (an unset key never matches anything).
func (k *Key) Seal(plain, aad []byte) (string, error) {
	if len(plain) == 0 {
		return "", nil
	}
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(plain)+k.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := k.aead.Seal(nonce, nonce, plain, aad)
	return sealedPrefix + k.id + ":" + base64.RawURLEncoding.EncodeToString(out), nil
}

// Open decrypts a value Seal returned for the same aad. A value that is not
// sealed (written before keys were encrypted) is returned as it is, with
// sealed false.
func (k *Key) Open(value string, aad []byte) (plain []byte, sealed bool, err error) {
	rest, ok := strings.CutPrefix(value, sealedPrefix)
	if !ok {
		return []byte(value), false, nil
	}
	id, data, ok := strings.Cut(rest, ":")
	if !ok {
		return nil, true, fmt.Errorf("malformed sealed value: %w", ErrWrongKey)
	}
	if id != k.id {
		return nil, true, fmt.Errorf("sealed with secrets key %s, this server has key %s: %w", id, k.id, ErrWrongKey)
	}
	b, err := base64.RawURLEncoding.DecodeString(data)
	if err != nil || len(b) < k.aead.NonceSize() {
		return nil, true, fmt.Errorf("malformed sealed value: %w", ErrWrongKey)
	}
	plain, err = k.aead.Open(nil, b[:k.aead.NonceSize()], b[k.aead.NonceSize():], aad)
	if err != nil {
		return nil, true, fmt.Errorf("sealed value does not open here (tampered with, or moved from another record): %w", ErrWrongKey)
	}
	return plain, true, nil
}

// IsSealed reports whether a stored value is sealed.
func IsSealed(value string) bool { return strings.HasPrefix(value, sealedPrefix) }

// KeyIDOf returns the key id a sealed value names ("" if not sealed).
func KeyIDOf(value string) string {
	rest, ok := strings.CutPrefix(value, sealedPrefix)
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, ":")
	return id
}

// SecretSettings are the settings that hold secrets: sealed like keys.
var SecretSettings = map[string]bool{"aml_token_signing_key": true}

func keyAAD(e *store.Endpoint, slot string) []byte {
	return []byte("plumbline endpoint key\x00" + e.ID + "\x00" + slot)
}

func settingAAD(name string) []byte {
	return []byte("plumbline setting\x00" + name)
}

// Store is a store.Store whose endpoint keys and secret settings are sealed
// at rest. Everything else passes through.
type Store struct {
	store.Store
	key *Key
}

var _ store.Store = (*Store)(nil)

// Wrap returns st with endpoint keys and SecretSettings sealed under key.
func Wrap(st store.Store, key *Key) *Store { return &Store{Store: st, key: key} }

// Full returns s as a store.Store that keeps the optional interfaces of the
// store it wraps (store.ModelUpdater), which embedding alone would hide.
func (s *Store) Full() store.Store {
	if mu, ok := s.Store.(store.ModelUpdater); ok {
		return struct {
			*Store
			store.ModelUpdater
		}{s, mu}
	}
	return s
}

func (s *Store) open(e *store.Endpoint) error {
	for _, f := range []struct {
		slot string
		v    *string
	}{{"primary", &e.PrimaryKey}, {"secondary", &e.SecondaryKey}} {
		plain, _, err := s.key.Open(*f.v, keyAAD(e, f.slot))
		if err != nil {
			return fmt.Errorf("endpoint %s %s key: %w", e.Name, f.slot, err)
		}
		*f.v = string(plain)
	}
	return nil
}

// seal seals e's keys; where a key is unchanged from was (its plain form)
// the stored sealed value old is kept, so an update that does not touch the
// keys does not change them in the store.
func (s *Store) seal(e *store.Endpoint, wasPrimary, wasSecondary, oldPrimary, oldSecondary string) error {
	for _, f := range []struct {
		slot     string
		v        *string
		was, old string
	}{{"primary", &e.PrimaryKey, wasPrimary, oldPrimary}, {"secondary", &e.SecondaryKey, wasSecondary, oldSecondary}} {
		if *f.v == f.was && IsSealed(f.old) {
			*f.v = f.old
			continue
		}
		sealed, err := s.key.Seal([]byte(*f.v), keyAAD(e, f.slot))
		if err != nil {
			return fmt.Errorf("endpoint %s %s key: %w", e.Name, f.slot, err)
		}
		*f.v = sealed
	}
	return nil
}

// CreateEndpoint seals the keys. An empty ID is assigned here (the keys are
// bound to it).
func (s *Store) CreateEndpoint(ctx context.Context, e store.Endpoint) (store.Endpoint, error) {
	if e.ID == "" {
		e.ID = store.NewEndpointID()
	}
	plainP, plainS := e.PrimaryKey, e.SecondaryKey
	if err := s.seal(&e, "", "", "", ""); err != nil {
		return store.Endpoint{}, err
	}
	out, err := s.Store.CreateEndpoint(ctx, e)
	if err != nil {
		return out, err
	}
	out.PrimaryKey, out.SecondaryKey = plainP, plainS
	return out, nil
}

func (s *Store) GetEndpoint(ctx context.Context, name string) (store.Endpoint, error) {
	e, err := s.Store.GetEndpoint(ctx, name)
	if err != nil {
		return e, err
	}
	return e, s.open(&e)
}

func (s *Store) ListEndpoints(ctx context.Context) ([]store.Endpoint, error) {
	eps, err := s.Store.ListEndpoints(ctx)
	if err != nil {
		return nil, err
	}
	for i := range eps {
		if err := s.open(&eps[i]); err != nil {
			return nil, err
		}
	}
	return eps, nil
}

// UpdateEndpoint shows fn the plain keys and seals what it leaves.
func (s *Store) UpdateEndpoint(ctx context.Context, name string, fn func(*store.Endpoint) error) (store.Endpoint, error) {
	return s.updateEndpoint(func(inner func(*store.Endpoint) error) (store.Endpoint, error) {
		return s.Store.UpdateEndpoint(ctx, name, inner)
	}, fn)
}

// UpdateEndpointWithDeployments is UpdateEndpoint's sealing around the
// store's UpdateEndpointWithDeployments.
func (s *Store) UpdateEndpointWithDeployments(ctx context.Context, name string, fn func(*store.Endpoint, []store.Deployment) error) (store.Endpoint, error) {
	var deps []store.Deployment
	return s.updateEndpoint(func(inner func(*store.Endpoint) error) (store.Endpoint, error) {
		return s.Store.UpdateEndpointWithDeployments(ctx, name, func(e *store.Endpoint, d []store.Deployment) error {
			deps = d
			return inner(e)
		})
	}, func(e *store.Endpoint) error { return fn(e, deps) })
}

// UpdateDeploymentWithEndpoint shows fn the endpoint with its keys opened.
func (s *Store) UpdateDeploymentWithEndpoint(ctx context.Context, endpoint, name string, fn func(*store.Endpoint, *store.Deployment) error) (store.Deployment, error) {
	return s.Store.UpdateDeploymentWithEndpoint(ctx, endpoint, name, func(e *store.Endpoint, d *store.Deployment) error {
		c := *e
		if err := s.open(&c); err != nil {
			return err
		}
		return fn(&c, d)
	})
}

// updateEndpoint runs an endpoint update (call, given the fn to run inside
// the store's transaction) showing fn the plain keys and sealing what it
// leaves.
func (s *Store) updateEndpoint(call func(inner func(*store.Endpoint) error) (store.Endpoint, error), fn func(*store.Endpoint) error) (store.Endpoint, error) {
	var plainP, plainS string
	out, err := call(func(e *store.Endpoint) error {
		oldP, oldS, id := e.PrimaryKey, e.SecondaryKey, e.ID
		if err := s.open(e); err != nil {
			return err
		}
		wasP, wasS := e.PrimaryKey, e.SecondaryKey
		if err := fn(e); err != nil {
			return err
		}
		e.ID = id // a key field: the store keeps it, and the keys are bound to it
		plainP, plainS = e.PrimaryKey, e.SecondaryKey
		return s.seal(e, wasP, wasS, oldP, oldS)
	})
	if err != nil {
		return out, err
	}
	out.PrimaryKey, out.SecondaryKey = plainP, plainS
	return out, nil
}

func (s *Store) GetSetting(ctx context.Context, name string) ([]byte, error) {
	b, err := s.Store.GetSetting(ctx, name)
	if err != nil || !SecretSettings[name] {
		return b, err
	}
	plain, _, err := s.key.Open(string(b), settingAAD(name))
	if err != nil {
		return nil, fmt.Errorf("setting %s: %w", name, err)
	}
	return plain, nil
}

func (s *Store) PutSetting(ctx context.Context, name string, value []byte) error {
	if !SecretSettings[name] {
		return s.Store.PutSetting(ctx, name, value)
	}
	sealed, err := s.key.Seal(value, settingAAD(name))
	if err != nil {
		return fmt.Errorf("setting %s: %w", name, err)
	}
	return s.Store.PutSetting(ctx, name, []byte(sealed))
}

// SealExisting seals what was stored in the clear before keys were
// encrypted (a data dir from an earlier plumbline): every endpoint's keys
// and the secret settings. It returns how many values it sealed. Values
// sealed with another key fail with ErrWrongKey.
func (s *Store) SealExisting(ctx context.Context) (int, error) {
	n := 0
	raw, err := s.Store.ListEndpoints(ctx)
	if err != nil {
		return 0, err
	}
	for _, e := range raw {
		if (e.PrimaryKey == "" || IsSealed(e.PrimaryKey)) && (e.SecondaryKey == "" || IsSealed(e.SecondaryKey)) {
			if err := s.open(&e); err != nil {
				return n, err
			}
			continue
		}
		if _, err := s.UpdateEndpoint(ctx, e.Name, func(*store.Endpoint) error { return nil }); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				continue // deleted meanwhile
			}
			return n, err
		}
		n++
	}
	for name := range SecretSettings {
		b, err := s.Store.GetSetting(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return n, err
		}
		if IsSealed(string(b)) {
			if _, _, err := s.key.Open(string(b), settingAAD(name)); err != nil {
				return n, fmt.Errorf("setting %s: %w", name, err)
			}
			continue
		}
		if err := s.PutSetting(ctx, name, b); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// SealedWith returns the id of a key some stored value is sealed with, or
// "" when nothing is sealed: a server about to create a new secrets key
// checks that nothing needs an old one.
func SealedWith(ctx context.Context, st store.Store) (string, error) {
	eps, err := st.ListEndpoints(ctx)
	if err != nil {
		return "", err
	}
	for _, e := range eps {
		for _, v := range []string{e.PrimaryKey, e.SecondaryKey} {
			if id := KeyIDOf(v); id != "" {
				return id, nil
			}
		}
	}
	for name := range SecretSettings {
		b, err := st.GetSetting(ctx, name)
		if err == nil && bytes.HasPrefix(b, []byte(sealedPrefix)) {
			return KeyIDOf(string(b)), nil
		}
	}
	return "", nil
}

// LoadOrCreate returns the key at path, creating it when the file does not
// exist and nothing in st is sealed yet. When st holds values sealed with a
// key and the file is missing, it fails rather than make a key that cannot
// open them.
func LoadOrCreate(ctx context.Context, path string, st store.Store) (*Key, error) {
	k, err := LoadKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	id, err := SealedWith(ctx, st)
	if err != nil {
		return nil, err
	}
	if id != "" {
		return nil, fmt.Errorf("secrets key %s is missing, and the store holds endpoint keys sealed with key %s: restore the file from a backup, or point --secrets-key-file at the key the other servers of this store use", path, id)
	}
	k, err = CreateKey(path)
	if errors.Is(err, fs.ErrExist) {
		return LoadKey(path) // a replica sharing the data dir made it just now
	}
	return k, err
}
